package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
)

const paymentsService = `apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: payments
spec:
  ports:
  - name: http
    port: 8080
    protocol: http
`

// TestStorePersistsAcrossRestart: resources, the CA and join tokens survive
// a restart of the control plane on its embedded store.
func TestStorePersistsAcrossRestart(t *testing.T) {
	cp := startControl(t, controlOpts{})
	cp.apply(t, paymentsService)
	tok := cp.token(t, "payments")
	caBefore, _ := os.ReadFile(cp.caFile())

	if err := cp.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	cp.restart(t)

	obj, err := cp.client.Get(context.Background(), "service", "default", "payments")
	if err != nil {
		t.Fatalf("payments after restart: %v", err)
	}
	if obj.Metadata.Name != "payments" {
		t.Fatalf("got %+v", obj)
	}
	caAfter, _ := os.ReadFile(cp.caFile())
	if string(caBefore) != string(caAfter) {
		t.Fatal("the root CA changed across a restart")
	}
	// The token issued before the restart still admits a proxy.
	b := startBackend(t, nextIP(), "payments", nil)
	startSidecar(t, cp, sidecarOpts{service: "payments", app: b.addr, token: tok}).waitReady(t)
}

// TestApplyIsAllOrNothing: a multi-document apply with one bad document
// stores nothing, and the error names the field and line.
func TestApplyIsAllOrNothing(t *testing.T) {
	cp := startControl(t, controlOpts{})
	bad := paymentsService + `---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: ledger
spec:
  ports:
  - name: grpc
    port: 70000
    protocl: grpc
`
	file := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(file, []byte(bad), 0o644)
	out, err := exec.Command(weftBin, "apply", "-f", file, "--config", filepath.Join(cp.dataDir, "config")).CombinedOutput()
	if err == nil {
		t.Fatalf("apply of a bad document succeeded:\n%s", out)
	}
	for _, want := range []string{"bad.yaml:19: Service default/ledger: spec.ports[0].protocl: unknown field", `did you mean "protocol"`,
		"bad.yaml:18: Service default/ledger: spec.ports[0].port: must be between 1 and 65535", "nothing applied"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error output lacks %q:\n%s", want, out)
		}
	}
	if _, err := cp.client.Get(context.Background(), "service", "default", "payments"); err == nil {
		t.Fatal("payments was stored although the apply failed")
	}
	var apiErr *client.APIError
	if _, err := cp.client.Get(context.Background(), "service", "default", "payments"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("want a 404 APIError, got %v", err)
	}
}

// TestExternalEtcd: two control planes share an external etcd running as its
// own process; a resource applied through one is served by the other, and
// both agree on the CA.
func TestExternalEtcd(t *testing.T) {
	clientURL := startEtcd(t)
	a := startControl(t, controlOpts{etcd: []string{clientURL}})
	b := startControl(t, controlOpts{etcd: []string{clientURL}})
	a.apply(t, paymentsService)
	if _, err := b.client.Get(context.Background(), "service", "default", "payments"); err != nil {
		t.Fatalf("replica b does not see what replica a stored: %v", err)
	}
	caA, _ := os.ReadFile(a.caFile())
	caB, _ := os.ReadFile(b.caFile())
	if string(caA) != string(caB) {
		t.Fatal("the two replicas have different roots")
	}
	// A proxy joined through one replica is seen as a workload by the other.
	back := startBackend(t, nextIP(), "payments", nil)
	s := startSidecar(t, b, sidecarOpts{service: "payments", app: back.addr, token: a.token(t, "payments")}).waitReady(t)
	eventually(t, 5*time.Second, "workload visible through replica a", func() error {
		ws, err := a.client.Workloads(context.Background(), "default", "payments")
		if err != nil {
			return err
		}
		for _, w := range ws {
			if w.GetAddress() == s.inbound {
				return nil
			}
		}
		return fmt.Errorf("workloads: %v", ws)
	})
}

// startEtcd runs a real etcd server as its own process and returns its client URL.
func startEtcd(t *testing.T) string {
	t.Helper()
	etcdBin := filepath.Join(filepath.Dir(weftBin), "etcd")
	if _, err := os.Stat(etcdBin); err != nil {
		build := exec.Command("go", "build", "-o", etcdBin, "github.com/weftmesh/weft/test/e2e/etcd")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build etcd: %v\n%s", err, out)
		}
	}
	ip := nextIP()
	clientURL, peerURL := "http://"+freeAddr(t, ip), "http://"+freeAddr(t, ip)
	etcd := exec.Command(etcdBin, "--name", "e2e", "--data-dir", t.TempDir(),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "e2e="+peerURL, "--log-level", "error")
	etcd.Stderr = os.Stderr
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Process.Kill(); etcd.Wait() })
	eventually(t, 30*time.Second, "etcd healthy", func() error { return httpGetOK(clientURL + "/health") })
	return clientURL
}
