package e2e

// Transparent capture between pods: each pod is a network namespace
// (netns_test.go) with its app, its `weft proxy --mode transparent` and the
// NAT rules of `weft proxy iptables`; the control plane runs in the hub
// namespace, behind the bridge. The proxies run with group 1337 (their uid
// stays root so they can read the test's files) and the rules exclude that
// group (--proxy-gid 1337): the proxy's own connections are not captured.
// Clients are plain Go HTTP clients whose sockets are opened inside the
// client pod: unmodified apps, captured by the pod's OUTPUT chain.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const proxyGID = 1337

// meshNet is a hub namespace running the control plane, and its pods.
type meshNet struct {
	*podNet
	dataDir, grpc, config string
}

func startMeshNet(t *testing.T) *meshNet {
	t.Helper()
	n := newPodNet(t)
	m := &meshNet{podNet: n, dataDir: t.TempDir(), grpc: n.hubIP + ":15010"}
	m.config = filepath.Join(m.dataDir, "config")
	cp := startProcIn(t, n.hub, "control", 0, "control", "--data-dir", m.dataDir,
		"--grpc-addr", m.grpc, "--api-addr", "127.0.0.1:15011", "--dashboard-addr", "127.0.0.1:15014")
	eventually(t, 60*time.Second, "control plane answers in the hub", func() error {
		if cp.exited() {
			t.Fatalf("control plane exited: %v\n%s", cp.err, cp.output())
		}
		_, err := m.weft("token", "list")
		return err
	})
	return m
}

// weft runs the CLI in the hub, against the control plane.
func (m *meshNet) weft(args ...string) (string, error) {
	return outputIn(m.hub, append([]string{weftBin, "--config", m.config}, args...)...)
}

func (m *meshNet) apply(t *testing.T, doc string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "apply.yaml")
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := m.weft("apply", "-f", f); err != nil {
		t.Fatalf("weft apply: %v\n%s", err, out)
	}
}

// capturedPod is a pod with a transparent proxy and the capture rules.
type capturedPod struct {
	ns, ip  string
	service string
	proxy   *proc
	admin   *http.Client
}

// podApp is what runs beside a pod's proxy: an HTTP handler or a TCP echo
// server on port (default 8080), or nothing.
type podApp struct {
	http    http.Handler
	tcpEcho bool
	port    int
}

// startCapturedPod creates a pod whose app (if h is not nil) serves h on
// port 8080, applies the capture rules and starts its transparent proxy.
func (m *meshNet) startCapturedPod(t *testing.T, name, service, version string, h http.Handler) *capturedPod {
	t.Helper()
	return m.startPodWith(t, name, service, version, podApp{http: h})
}

// startPodWith is startCapturedPod with any app.
func (m *meshNet) startPodWith(t *testing.T, name, service, version string, app podApp) *capturedPod {
	t.Helper()
	ns, ip := m.createPod(t, name)
	p := &capturedPod{ns: ns, ip: ip, service: service, admin: httpClientIn(ns)}
	if app.port == 0 {
		app.port = 8080
	}
	appAddr := fmt.Sprintf("0.0.0.0:%d", app.port)
	switch {
	case app.http != nil:
		serveIn(t, ns, appAddr, app.http)
	case app.tcpEcho:
		echoIn(t, ns, appAddr)
	}
	if out, err := runIn(ns, weftBin, "proxy", "iptables", "--proxy-gid", fmt.Sprint(proxyGID), "--exclude-inbound-ports", "15000"); err != nil {
		t.Fatalf("weft proxy iptables in %s: %v\n%s", ns, err, out)
	}
	args := []string{"--mode", "transparent", "--app", fmt.Sprintf("127.0.0.1:%d", app.port), "--inbound", fmt.Sprintf("%s:%d", ip, app.port)}
	if version != "" {
		args = append(args, "--version", version)
	}
	m.runProxy(t, p, name, args...)
	return p
}

// runProxy starts p's proxy in its pod, as group proxyGID (the capture
// rules exclude it), with a fresh join token for p.service, the mesh CA
// and its admin port on 127.0.0.1:15000, plus args; it waits until the
// proxy is ready.
func (m *meshNet) runProxy(t *testing.T, p *capturedPod, name string, args ...string) {
	t.Helper()
	tok, err := m.weft("token", "create", "--service", p.service)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	all := append([]string{"proxy", "--service", p.service, "--control", m.grpc, "--token", strings.TrimSpace(tok),
		"--ca-file", filepath.Join(m.dataDir, "ca.crt"), "--admin", "127.0.0.1:15000", "--drain-delay", "100ms"}, args...)
	p.proxy = startProcIn(t, p.ns, name+"-proxy", proxyGID, all...)
	eventually(t, 30*time.Second, name+" proxy ready", func() error {
		if p.proxy.exited() {
			t.Fatalf("%s proxy exited: %v\n%s", name, p.proxy.err, p.proxy.output())
		}
		return clientGetOK(p.admin, "http://127.0.0.1:15000/ready")
	})
}

func (p *capturedPod) adminGet(t *testing.T, path string) string {
	t.Helper()
	resp, err := p.admin.Get("http://127.0.0.1:15000" + path)
	if err != nil {
		t.Fatalf("admin %s in %s: %v", path, p.ns, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// vipOf reads a service's VIP from the pod's outbound capture listener.
func (p *capturedPod) vipOf(t *testing.T, host string) string {
	t.Helper()
	re := regexp.MustCompile(`"` + regexp.QuoteMeta(host) + `"\s*:\s*"([0-9.]+)"`)
	var vip string
	eventually(t, 30*time.Second, "VIP of "+host+" in "+p.ns, func() error {
		m := re.FindStringSubmatch(p.adminGet(t, "/config_dump"))
		if m == nil {
			return fmt.Errorf("no VIP for %s in the config dump yet", host)
		}
		vip = m[1]
		return nil
	})
	return vip
}

func clientGetOK(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// podGet returns the status and body of one request from a client pod.
func podGet(c *http.Client, url string, header ...string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func natRules(t *testing.T, ns string) string {
	t.Helper()
	out, err := outputIn(ns, "iptables-save", "-t", "nat")
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A ") || strings.HasPrefix(l, ":WEFT") {
			rules = append(rules, l)
		}
	}
	return strings.Join(rules, "\n")
}

func TestCaptureIptablesIdempotentAndCleanup(t *testing.T) {
	n := newPodNet(t)
	ns, _ := n.createPod(t, "ipt")
	apply := func(args ...string) {
		t.Helper()
		if out, err := runIn(ns, append([]string{weftBin, "proxy", "iptables"}, args...)...); err != nil {
			t.Fatalf("weft proxy iptables %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	apply("--capture-dns", "--exclude-outbound-cidrs", "169.254.169.254/32")
	first := natRules(t, ns)
	apply("--capture-dns", "--exclude-outbound-cidrs", "169.254.169.254/32")
	if again := natRules(t, ns); again != first {
		t.Fatalf("running twice changed the rules:\nfirst:\n%s\nagain:\n%s", first, again)
	}
	for _, want := range []string{"-A PREROUTING -p tcp -j WEFT_INBOUND", "-A OUTPUT -p tcp -j WEFT_OUTBOUND",
		"--to-ports 15001", "--to-ports 15006", "-d 169.254.169.254/32 -j RETURN"} {
		if strings.Count(first, want) != 1 {
			t.Errorf("want %q once in:\n%s", want, first)
		}
	}
	if strings.Count(first, "--to-ports 15053") != 2 {
		t.Errorf("want DNS over UDP and TCP redirected to 15053:\n%s", first)
	}
	// Converges to a different configuration: the DNS rules go.
	apply()
	if r := natRules(t, ns); strings.Contains(r, "WEFT_DNS") || strings.Count(r, "-j WEFT_OUTBOUND") != 1 {
		t.Fatalf("after re-running without --capture-dns:\n%s", r)
	}
	// Rules of others are left alone by cleanup.
	if out, err := runIn(ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "9", "-j", "RETURN"); err != nil {
		t.Fatal(err, out)
	}
	apply("--cleanup")
	r := natRules(t, ns)
	if strings.Contains(r, "WEFT") {
		t.Fatalf("WEFT rules left after --cleanup:\n%s", r)
	}
	if !strings.Contains(r, "--dport 9 -j RETURN") {
		t.Fatalf("--cleanup removed a rule it did not add:\n%s", r)
	}
	apply("--cleanup") // nothing left: still fine
	out, err := outputIn(ns, weftBin, "proxy", "iptables", "--dry-run")
	if err != nil || !strings.Contains(out, "iptables-restore --noflush") || !strings.Contains(out, "COMMIT") {
		t.Fatalf("--dry-run: %v\n%s", err, out)
	}
	if r := natRules(t, ns); strings.Contains(r, "WEFT") {
		t.Fatalf("--dry-run applied rules:\n%s", r)
	}
}

func TestCaptureTransparentMesh(t *testing.T) {
	m := startMeshNet(t)
	m.apply(t, `
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: hello}
spec:
  ports: [{port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: echo}
spec:
  ports: [{port: 5000, protocol: tcp}]
  vip: 10.96.0.10
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: client}
spec:
  ports: [{port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: hello}
spec:
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`)
	app := func(version string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s", version, r.URL.Path)
		})
	}
	h1 := m.startCapturedPod(t, "h1", "hello", "v1", app("v1"))
	// A second port of the pod's app that no Service declares.
	var undeclaredHits atomic.Int64
	serveIn(t, h1.ns, "0.0.0.0:9090", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		undeclaredHits.Add(1)
		fmt.Fprint(w, "undeclared")
	}))
	server2 := m.startCapturedPod(t, "h2", "hello", "v2", app("v2"))
	m.startPodWith(t, "ec", "echo", "v1", podApp{tcpEcho: true, port: 5000})
	client := m.startCapturedPod(t, "cl", "client", "v1", nil)
	vip := client.vipOf(t, "hello.default")
	if !strings.HasPrefix(vip, "240.240.") {
		t.Fatalf("hello's VIP %s is not from the default range", vip)
	}
	c := httpClientIn(client.ns)
	url := "http://" + vip + ":8080/"

	seen := map[string]int{}
	eventually(t, 30*time.Second, "the app reached through the VIP", func() error {
		code, body, err := podGet(c, url)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	for range 20 {
		code, body, err := podGet(c, url)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s: %d %q %v", url, code, body, err)
		}
		seen[strings.Fields(body)[0]]++
	}
	if seen["v1"] == 0 || seen["v2"] == 0 {
		t.Errorf("both versions should answer without a Route: %v", seen)
	}

	// A TCP service, at the VIP its Service declares.
	if vip := client.vipOf(t, "echo.default"); vip != "10.96.0.10" {
		t.Fatalf("echo's VIP is %s, want its declared 10.96.0.10", vip)
	}
	eventually(t, 30*time.Second, "TCP echo through the declared VIP", func() error {
		return echoOnce(client.ns, "10.96.0.10:5000")
	})

	// The hop between the pods is mTLS: the server side saw the client's identity.
	eventually(t, 10*time.Second, "mTLS request metric on the server", func() error {
		metrics := server2.adminGet(t, "/metrics")
		for _, l := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(l, "weft_requests_total{") && strings.Contains(l, `direction="inbound"`) &&
				strings.Contains(l, `source_service="client"`) && strings.Contains(l, `mtls="true"`) {
				return nil
			}
		}
		return fmt.Errorf("no inbound request from client with mtls=\"true\" in:\n%s", grepLines(metrics, "weft_requests_total"))
	})

	// A Route applies to captured traffic: a header picks v2, the rest goes to v1.
	m.apply(t, `
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: hello}
spec:
  service: hello
  rules:
  - name: canary
    match: [{headers: [{name: x-canary, exact: "yes"}]}]
    backends: [{subset: v2}]
  - name: default
    backends: [{subset: v1}]
`)
	eventually(t, 30*time.Second, "the Route applies to captured traffic", func() error {
		for range 10 {
			if _, body, err := podGet(c, url); err != nil || !strings.HasPrefix(body, "v1") {
				return fmt.Errorf("default: %q %v", body, err)
			}
			if _, body, err := podGet(c, url, "x-canary", "yes"); err != nil || !strings.HasPrefix(body, "v2") {
				return fmt.Errorf("canary: %q %v", body, err)
			}
		}
		return nil
	})

	// An AccessPolicy on hello's inbound side refuses the captured request.
	m.apply(t, `
apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: no-client-admin}
spec:
  service: hello
  action: DENY
  rules:
  - name: admin
    from: [{services: [client]}]
    to: [{paths: [{prefix: /admin}]}]
`)
	eventually(t, 30*time.Second, "the AccessPolicy applies to captured traffic", func() error {
		code, body, err := podGet(c, "http://"+vip+":8080/admin")
		if err != nil || code != http.StatusForbidden {
			return fmt.Errorf("/admin: %d %q %v", code, body, err)
		}
		if code, body, err := podGet(c, url); err != nil || code != http.StatusOK {
			return fmt.Errorf("/: %d %q %v", code, body, err)
		}
		return nil
	})

	// The server side's log names the refused caller by its SPIFFE ID, from
	// the mTLS handshake (access logs record denials by default).
	eventually(t, 10*time.Second, "the client's SPIFFE ID in the server's log", func() error {
		return logged(h1.proxy.output(), `"direction":"inbound"`, `"source":"spiffe://weft.local/ns/default/sa/client"`, `"/admin"`)
	})

	// Under STRICT the inbound side serves the workload's own port only: a
	// captured connection to another port of the pod is closed and logged,
	// never handed to the app's port.
	// (The client's sidecar detects HTTP and answers 503 when the
	// connection is closed.)
	if code, body, err := podGet(c, "http://"+h1.ip+":9090/"); err == nil && code == http.StatusOK {
		t.Errorf("an undeclared port of a captured pod answered %d %q through its sidecar", code, body)
	}
	if n := undeclaredHits.Load(); n != 0 {
		t.Errorf("the undeclared port's app got %d requests", n)
	}
	eventually(t, 5*time.Second, "the closed connection logged", func() error {
		return logged(h1.proxy.output(), "no filter chain matches the connection", h1.ip+":9090")
	})

	// Outside the mesh (the hub namespace, not captured), a plaintext client
	// is refused while hello is STRICT and served once it is PERMISSIVE; the
	// mesh's own mTLS traffic goes on.
	hub := httpClientIn(m.hub)
	direct := "http://" + h1.ip + ":8080/"
	if code, body, err := podGet(hub, direct); err == nil {
		t.Errorf("plaintext to a STRICT captured pod: %d %q", code, body)
	}
	m.apply(t, "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: hello}\nspec:\n  ports: [{port: 8080, protocol: http}]\n  mtls: {mode: PERMISSIVE}\n")
	eventually(t, 30*time.Second, "plaintext served once hello is PERMISSIVE", func() error {
		code, body, err := podGet(hub, direct)
		if err != nil || code != http.StatusOK || !strings.HasPrefix(body, "v1") {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	if code, body, err := podGet(c, url); err != nil || code != http.StatusOK {
		t.Errorf("mesh traffic to a PERMISSIVE captured pod: %d %q %v", code, body, err)
	}
	// PERMISSIVE passes the pod's other ports through, as Istio's inbound
	// passthrough does.
	if code, body, err := podGet(hub, "http://"+h1.ip+":9090/"); err != nil || code != http.StatusOK || body != "undeclared" {
		t.Errorf("an undeclared port of a PERMISSIVE captured pod: %d %q %v", code, body, err)
	}

	// A service created after the client started: its VIP and its chain
	// reach the running client proxy.
	m.apply(t, `
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: late}
spec:
  ports: [{port: 8080, protocol: http}]
`)
	m.startCapturedPod(t, "lt", "late", "v1", app("late"))
	lateURL := "http://" + client.vipOf(t, "late.default") + ":8080/x"
	eventually(t, 30*time.Second, "a service created later reached through its VIP", func() error {
		code, body, err := podGet(c, lateURL)
		if err != nil || code != http.StatusOK || body != "late /x" {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})

	// A destination outside the mesh passes through (ALLOW_ANY): a server
	// in the hub namespace, reached at its own address.
	serveIn(t, m.hub, m.hubIP+":9099", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "outside")
	}))
	if code, body, err := podGet(c, "http://"+m.hubIP+":9099/"); err != nil || code != http.StatusOK || body != "outside" {
		t.Fatalf("passthrough: %d %q %v", code, body, err)
	}

	// REGISTRY_ONLY: the same destination is refused (the request was
	// detected as HTTP: 502 egress_denied), and the client's proxy says why.
	// capture_egress_test.go covers TLS and TCP.
	m.apply(t, "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: {name: default}\nspec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")
	eventually(t, 30*time.Second, "a destination outside the registry refused", func() error {
		c.CloseIdleConnections()
		if code, body, err := podGet(c, "http://"+m.hubIP+":9099/"); err != nil || code != http.StatusBadGateway {
			return fmt.Errorf("still passed through: %d %q %v", code, body, err)
		}
		return nil
	})
	eventually(t, 5*time.Second, "the refusal in the client's log", func() error {
		return logged(client.proxy.output(), "request refused", "egress_denied", m.hubIP+":9099")
	})
	// Mesh services are still reached.
	if code, _, err := podGet(c, "http://"+client.vipOf(t, "late.default")+":8080/x"); err != nil || code != http.StatusOK {
		t.Fatalf("a mesh service under REGISTRY_ONLY: %d %v", code, err)
	}
}

// echoIn runs a TCP echo server inside namespace ns until the test ends.
func echoIn(t *testing.T, ns, addr string) {
	t.Helper()
	serveTCPIn(t, ns, addr, func(c net.Conn) { _, _ = io.Copy(c, c) })
}

// serveTCPIn serves each connection to addr inside namespace ns with
// handle, on a goroutine of its own that may last 30 s, until the test
// ends; it closes the connection after handle.
func serveTCPIn(t *testing.T, ns, addr string, handle func(net.Conn)) {
	t.Helper()
	ln, err := listenIn(ns, addr)
	if err != nil {
		t.Fatalf("listen in %s on %s: %v", ns, addr, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

// echoOnce sends a line from namespace ns to addr and expects it back.
func echoOnce(ns, addr string) error {
	c, err := dialIn(ns)(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	const msg = "hello over tcp\n"
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("echo from %s: %w", addr, err)
	}
	if string(got) != msg {
		return fmt.Errorf("echo from %s: got %q", addr, got)
	}
	return nil
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
