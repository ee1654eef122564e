package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

func clusterHasEndpoint(clusters, cluster, addr string) bool {
	for _, line := range strings.Split(clusters, "\n") {
		if strings.HasPrefix(line, cluster+"::") && (addr == "" || strings.Contains(line, addr)) {
			return true
		}
	}
	return false
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// pollEndpoint measures how long until the sidecar's view of cluster has
// (want) or lacks (!want) addr, polling every 10ms up to limit.
func pollEndpoint(t *testing.T, s *sidecar, cluster, addr string, want bool, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if clusterHasEndpoint(s.adminGet(t, "/clusters"), cluster, addr) == want {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: endpoint %s present=%v not reached within %s:\n%s", s.service, addr, want, limit, s.adminGet(t, "/clusters"))
	return 0
}

// TestEndpointsJoinAndLeave: a new endpoint reaches the other proxies in
// under a second, a SIGKILLed one vanishes within 10s, a stopped one at once.
func TestEndpointsJoinAndLeave(t *testing.T) {
	cp := startControl(t, controlOpts{})
	front := startSidecar(t, cp, sidecarOpts{service: "frontend", upstreams: []string{"catalog"}}).waitReady(t)
	const cluster = "outbound|catalog.default"

	ipA := nextIP()
	a := startSidecar(t, cp, sidecarOpts{service: "catalog", app: startBackend(t, ipA, "a", nil).addr, ip: ipA})
	// Wait for a to be ready (it registers ready at that moment), then time the spread.
	for httpGetOK("http://"+a.admin+"/ready") != nil {
		if a.exited() {
			t.Fatalf("catalog sidecar exited:\n%s", a.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := pollEndpoint(t, front, cluster, a.inbound, true, 5*time.Second); d > time.Second {
		t.Errorf("join took %s to reach the frontend, want under 1s", d)
	} else {
		t.Logf("join reached the frontend %s after the new proxy became ready", d)
	}

	ipB, ipC := nextIP(), nextIP()
	b := startSidecar(t, cp, sidecarOpts{service: "catalog", app: startBackend(t, ipB, "b", nil).addr, ip: ipB}).waitReady(t)
	c := startSidecar(t, cp, sidecarOpts{service: "catalog", app: startBackend(t, ipC, "c", nil).addr, ip: ipC}).waitReady(t)
	pollEndpoint(t, front, cluster, b.inbound, true, 5*time.Second)
	pollEndpoint(t, front, cluster, c.inbound, true, 5*time.Second)

	b.signal(syscall.SIGKILL)
	d := pollEndpoint(t, front, cluster, b.inbound, false, 10*time.Second)
	t.Logf("SIGKILLed endpoint gone after %s", d)

	c.signal(syscall.SIGTERM)
	if d := pollEndpoint(t, front, cluster, c.inbound, false, 5*time.Second); d > time.Second {
		t.Errorf("a cleanly stopping endpoint took %s to leave, want under 1s", d)
	}
	if !clusterHasEndpoint(front.adminGet(t, "/clusters"), cluster, a.inbound) {
		t.Fatal("the surviving endpoint vanished too")
	}
}
