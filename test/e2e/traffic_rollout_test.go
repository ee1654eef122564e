package e2e

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// TestRollout runs `weft rollout` as a user would, against real proxies
// carrying live traffic, with a v2 that starts failing half-way: the rollout
// must notice from the proxies' metrics and move everything back to v1.
func TestRollout(t *testing.T) {
	cp := startMeshControl(t)
	var v2Failing atomic.Bool
	startWorkloads(t, cp, "catalog", []string{"v1", "v2"}, func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if name == "catalog-v2" && v2Failing.Load() {
				http.Error(w, "v2 broke", http.StatusInternalServerError)
				return
			}
			w.Write([]byte(name))
		})
	})
	client := startClient(t, cp, "catalog")
	applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: catalog}
spec:
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`, client)
	waitClusterSize(t, client, "outbound|catalog.default|v2", 1)

	l := startLoad("http://"+client.upstreams["catalog"]+"/", 10*time.Millisecond)
	defer l.finish()
	cmd := exec.Command(weftBin, "--config", filepath.Join(cp.dataDir, "config"), "rollout", "catalog",
		"--to", "v2", "--from", "v1", "--steps", "20,50,100", "--interval", "6s",
		"--max-error-rate", "5%", "--min-requests", "20")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Half-way through the first step's watch, v2 starts failing.
	eventually(t, 30*time.Second, "rollout at its first step", func() error {
		if !strings.Contains(out.String(), "[step 1/3]") {
			return errorf("output so far:\n%s", out.String())
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	v2Failing.Store(true)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("rollout succeeded although v2 was failing:\n%s", out.String())
		}
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("rollout did not finish:\n%s", out.String())
	}
	text := out.String()
	t.Logf("rollout output:\n%s", text)
	for _, want := range []string{"too many errors", "rolled back", "v1 100%"} {
		if !strings.Contains(text, want) {
			t.Errorf("rollout output lacks %q", want)
		}
	}
	// The stored Route sends everything to v1 again, and traffic recovers.
	obj, err := cp.client.Get(context.Background(), "route", "default", "catalog")
	if err != nil {
		t.Fatalf("Route after rollback: %v", err)
	}
	for _, b := range obj.Spec.(*v1alpha1.RouteSpec).Rules[0].Backends {
		if b.Subset == "v2" && b.Weight != nil && *b.Weight != 0 {
			t.Fatalf("after rollback v2 still has weight %d", *b.Weight)
		}
	}
	eventually(t, 10*time.Second, "traffic back on v1", func() error {
		if r := doGet("http://" + client.upstreams["catalog"] + "/"); r.code != 200 {
			return errorf("status %d", r.code)
		}
		return nil
	})
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
