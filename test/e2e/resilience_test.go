package e2e

import (
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestControlPlaneRestartUnderTraffic: stopping and restarting the control
// plane (cleanly, then by SIGKILL) loses no request.
func TestControlPlaneRestartUnderTraffic(t *testing.T) {
	f := newMesh(t)
	l := startLoad("http://"+f.catalogPort+"/items", 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	if err := f.cp.stop(); err != nil {
		t.Fatalf("stop control plane: %v", err)
	}
	time.Sleep(time.Second)
	f.cp.restart(t)
	time.Sleep(time.Second)
	f.cp.signal(syscall.SIGKILL)
	<-f.cp.done
	time.Sleep(time.Second)
	f.cp.restart(t)
	// The proxies reconnect and the mesh still converges.
	f.front.waitReady(t)
	time.Sleep(2 * time.Second)
	ok, failed, errs := l.finish()
	t.Logf("%d ok, %d failed", ok, failed)
	if failed > 0 || ok < 300 {
		t.Fatalf("%d requests failed (ok %d) across control-plane restarts: %v", failed, ok, errs)
	}
}

// TestControlPlaneOutage: with the control plane gone, traffic flows on the
// last good config; when it returns, the proxies reconnect and pick up what
// changed meanwhile (a workload that started, and one that stopped, while it was away).
func TestControlPlaneOutage(t *testing.T) {
	f := newMesh(t)
	const cluster = "outbound|catalog.default"
	v3Token := f.cp.token(t, "catalog")
	f.cp.signal(syscall.SIGKILL)
	<-f.cp.done

	l := startLoad("http://"+f.catalogPort+"/items", 10*time.Millisecond)
	time.Sleep(2 * time.Second)
	ok, failed, errs := l.finish()
	if failed > 0 || ok < 100 {
		t.Fatalf("with the control plane down: %d ok, %d failed: %v", ok, failed, errs)
	}

	// Meanwhile: v2 leaves and v3 starts (and waits for the control plane).
	if err := f.catV2.stop(); err != nil {
		t.Fatalf("stop v2: %v", err)
	}
	ip3 := nextIP()
	v3 := startSidecar(t, f.cp, sidecarOpts{service: "catalog", version: "v3", token: v3Token,
		app: startBackend(t, ip3, "catalog-v3", nil).addr, ip: ip3})

	f.cp.restart(t)
	v3.waitReady(t)
	pollEndpoint(t, f.front, cluster, v3.inbound, true, 10*time.Second)
	// v2's lease, held by the dead control plane, expires.
	pollEndpoint(t, f.front, cluster, f.catV2.inbound, false, 30*time.Second)
	code, body, _ := get(t, http.DefaultClient, "http://"+f.catalogPort+"/")
	if code != 200 {
		t.Fatalf("after the outage: %d %s", code, body)
	}
}

// TestDrainOnSIGTERM: a stopping sidecar finishes the request in flight.
func TestDrainOnSIGTERM(t *testing.T) {
	cp := startControl(t, controlOpts{})
	ip := nextIP()
	slow := startBackend(t, ip, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
		w.Write([]byte("finished"))
	}))
	server := startSidecar(t, cp, sidecarOpts{service: "slow", app: slow.addr, ip: ip}).waitReady(t)
	client := startSidecar(t, cp, sidecarOpts{service: "client", upstreams: []string{"slow"}}).waitReady(t)
	waitEndpoints(t, client, "slow")

	type result struct {
		code int
		body string
	}
	res := make(chan result, 2)
	for _, target := range []string{"server", "client"} {
		go func() {
			code, body, _ := get(t, http.DefaultClient, "http://"+client.upstreams["slow"]+"/"+target)
			res <- result{code, body}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	server.signal(syscall.SIGTERM)
	client.signal(syscall.SIGTERM)
	for range 2 {
		r := <-res
		if r.code != 200 || r.body != "finished" {
			t.Fatalf("in-flight request during drain: %d %q", r.code, r.body)
		}
	}
	for _, s := range []*sidecar{server, client} {
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s sidecar did not exit after draining", s.service)
		}
	}
}
