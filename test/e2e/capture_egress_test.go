package e2e

// Egress and protocol detection under transparent capture, in namespaces:
// a "world" pod stands in for everything outside the mesh (an HTTP server
// on the ports an ExternalService names and on one nobody declares, an
// HTTPS server, server-first TCP apps, and the pod's ordinary resolver); a
// captured client pod with DNS capture calls it with curl, by name, as an
// unmodified app would; an egress gateway runs in a pod of its own.

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/internal/testpki"
)

// world is the pod outside the mesh. It records who asked what.
type world struct {
	ns, ip string
	mu     sync.Mutex
	seen   []worldHit
}

type worldHit struct {
	port, host, path, tls, peer string
}

func (w *world) handler(port string) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h := worldHit{port: port, host: r.Host, path: r.URL.Path, peer: r.RemoteAddr}
		if r.TLS != nil {
			h.tls = r.TLS.ServerName
		}
		w.mu.Lock()
		w.seen = append(w.seen, h)
		w.mu.Unlock()
		fmt.Fprintf(rw, "world %s %s", r.Host, r.URL.Path)
	})
}

func (w *world) hits() []worldHit {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]worldHit(nil), w.seen...)
}

// curlIn runs curl in ns and returns the status code and body of one
// request (curl's own error when it has no response).
func curlIn(t *testing.T, ns string, args ...string) (int, string, error) {
	t.Helper()
	out, err := outputIn(ns, append([]string{"curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}"}, args...)...)
	if err != nil {
		return 0, out, fmt.Errorf("curl %v: %w: %s", args, err, out)
	}
	i := strings.LastIndexByte(out, '\n')
	code, cerr := strconv.Atoi(strings.TrimSpace(out[i+1:]))
	if cerr != nil {
		return 0, out, fmt.Errorf("curl %v: no status in %q", args, out)
	}
	return code, out[:i], nil
}

// metricValue sums the samples of a metric whose label set contains every
// one of labels.
func metricValue(metrics, name string, labels ...string) float64 {
	var sum float64
	for _, l := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(l, name+"{") {
			continue
		}
		all := true
		for _, want := range labels {
			all = all && strings.Contains(l, want)
		}
		if !all {
			continue
		}
		if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// startEgressPod runs `weft proxy --mode egress` as service in a pod of its
// own, its mTLS listener on the pod's address: no capture, it is the way out.
func (m *meshNet) startEgressPod(t *testing.T, name, service string) *capturedPod {
	t.Helper()
	ns, ip := m.createPod(t, name)
	p := &capturedPod{ns: ns, ip: ip, service: service, admin: httpClientIn(ns)}
	m.runProxy(t, p, name, "--mode", "egress", "--app", "127.0.0.1:8080", "--inbound", ip+":15443")
	return p
}

// TestCaptureEgressAndDetection: from an unmodified, captured pod,
//   - curl reaches a mesh service by its short name (DNS → VIP → mTLS);
//   - an ExternalService host resolves (the sidecar answers with its
//     endpoint) and is routed by Host, directly or through an egress gateway
//     in its own pod that originates TLS;
//   - HTTP to a port nobody declares is detected and counted as HTTP
//     (PassthroughCluster); TLS passes through untouched;
//   - a server-first app on a port a Service declares tcp greets at once,
//     on an undeclared port after the short detection timeout, which is
//     counted and logged;
//   - under REGISTRY_ONLY what no ExternalService lists is refused with the
//     reason (HTTP 502 egress_denied, TLS and TCP closed), and the listed
//     hosts, HTTP and TLS by SNI, still work.
func TestCaptureEgressAndDetection(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed (Debian package curl; .ci/run installs it)")
	}
	m := startMeshNet(t)

	// The world outside, with its own resolver for the names it serves.
	w := &world{}
	w.ns, w.ip = m.createPod(t, "world")
	ca := testpki.NewCA(t, "world-ca")
	caFile := filepath.Join(t.TempDir(), "world-ca.pem")
	if err := os.WriteFile(caFile, ca.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	cert := ca.Issue(t, spiffe.ID{}, testpki.Options{DNSNames: []string{"secure.partner.example", "other.world.example", "gated.partner.example"}})
	serveIn(t, w.ns, w.ip+":80", w.handler("80"))
	serveIn(t, w.ns, w.ip+":8081", w.handler("8081"))
	// h2c with prior knowledge, answering with the protocol it was spoken to in.
	h2cLn, err := listenIn(w.ns, w.ip+":8082")
	if err != nil {
		t.Fatal(err)
	}
	h2c := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "world %s %s", r.Proto, r.URL.Path)
	}), Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	go h2c.Serve(h2cLn)
	t.Cleanup(func() { h2c.Close() })
	tlsLn, err := listenIn(w.ns, w.ip+":443")
	if err != nil {
		t.Fatal(err)
	}
	tlsSrv := &http.Server{Handler: w.handler("443"), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go tlsSrv.ServeTLS(tlsLn, "", "")
	t.Cleanup(func() { tlsSrv.Close() })
	serveGreeter(t, w.ns, w.ip+":3306")
	serveGreeter(t, w.ns, w.ip+":3307")
	resolver := startPodResolver(t, w.ns, w.ip, map[string]netip.Addr{
		"plain.world.example.": netip.MustParseAddr(w.ip),
		"dyn.world.example.":   netip.MustParseAddr(w.ip),
	})

	pemBlock := indent(string(ca.PEM()), 6)
	m.apply(t, fmt.Sprintf(`
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: payments}
spec:
  ports: [{port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: client}
spec:
  ports: [{port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: db}
spec:
  ports: [{port: 3306, protocol: tcp}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: egress}
spec:
  ports: [{port: 15443, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: partner}
spec:
  hosts: [api.partner.example]
  ports: [{name: web, port: 80, protocol: http}]
  endpoints: [{address: %[1]s}]
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: secure}
spec:
  hosts: [secure.partner.example]
  ports: [{name: https, port: 443, protocol: tls}]
  endpoints: [{address: %[1]s}]
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: dyn}
spec:
  hosts: [dyn.world.example]
  ports: [{name: web, port: 8081, protocol: http}]
  resolution: DNS
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: gated}
spec:
  hosts: [gated.partner.example]
  ports: [{name: web, port: 80}]
  endpoints: [{address: %[1]s, ports: {web: 443}}]
  egressGateway: egress
  tls:
    mode: originate
    caBundle: |
%[2]s
`, w.ip, pemBlock))

	m.startCapturedPod(t, "pay", "payments", "v1", whoAmI("payments"))
	gw := m.startEgressPod(t, "egw", "egress")
	client := m.startDNSPod(t, "cl", "client", w.ip)

	// A mesh service by its short name, as `curl http://payments:8080/`.
	eventually(t, 30*time.Second, "curl http://payments:8080/ from the pod", func() error {
		code, body, err := curlIn(t, client.ns, "http://payments:8080/")
		if err != nil || code != http.StatusOK || body != "payments" {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	if resolver.asked("payments") || resolver.asked("payments.default.svc.weft") {
		t.Errorf("a mesh name reached the pod's own resolver")
	}

	// An ExternalService host: the sidecar resolves it to its endpoint, and
	// routes it by Host.
	eventually(t, 30*time.Second, "curl http://api.partner.example/pay", func() error {
		code, body, err := curlIn(t, client.ns, "http://api.partner.example/pay")
		if err != nil || code != http.StatusOK || body != "world api.partner.example /pay" {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	if resolver.asked("api.partner.example") {
		t.Errorf("the ExternalService host reached the pod's resolver: its sidecar should answer it")
	}

	// Through the egress gateway, which originates TLS: the world sees TLS
	// with the ExternalService's SNI, from the gateway pod.
	eventually(t, 30*time.Second, "curl http://gated.partner.example/pay through the egress gateway", func() error {
		code, body, err := curlIn(t, client.ns, "http://gated.partner.example/pay")
		if err != nil || code != http.StatusOK || body != "world gated.partner.example /pay" {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	for _, h := range w.hits() {
		if h.host == "gated.partner.example" && (h.tls != "gated.partner.example" || !strings.HasPrefix(h.peer, gw.ip+":")) {
			t.Errorf("gated.partner.example reached the world as %+v: want TLS with its SNI, from the gateway pod %s", h, gw.ip)
		}
	}
	if v := metricValue(gw.adminGet(t, "/metrics"), "weft_requests_total", `direction="inbound"`, `source_service="client"`, `mtls="true"`); v == 0 {
		t.Errorf("the egress gateway counted no mTLS request from client")
	}

	// HTTP on a port nobody declares: detected, and counted as HTTP.
	code, body, err := curlIn(t, client.ns, "http://plain.world.example:8081/x")
	if err != nil || code != http.StatusOK || body != "world plain.world.example:8081 /x" {
		t.Fatalf("HTTP passthrough: %d %q %v", code, body, err)
	}
	eventually(t, 10*time.Second, "the passthrough request counted as HTTP", func() error {
		if v := metricValue(client.adminGet(t, "/metrics"), "weft_requests_total", `direction="outbound"`,
			`destination_service="PassthroughCluster"`, `response_code="200"`); v == 0 {
			return fmt.Errorf("no outbound PassthroughCluster request with code 200 in:\n%s",
				grepLines(client.adminGet(t, "/metrics"), "weft_requests_total"))
		}
		return nil
	})

	// The HTTP/2 preface is detected too; the request goes on as h2c.
	if code, body, err := curlIn(t, client.ns, "--http2-prior-knowledge", "http://plain.world.example:8082/h2"); err != nil ||
		code != http.StatusOK || body != "world HTTP/2.0 /h2" {
		t.Fatalf("h2c passthrough: %d %q %v", code, body, err)
	}

	// TLS passes through untouched: curl verifies the world's certificate.
	secure := func(name string) (int, string, error) {
		return curlIn(t, client.ns, "--cacert", caFile, "--resolve", name+":443:"+w.ip, "https://"+name+"/s")
	}
	if code, body, err := secure("secure.partner.example"); err != nil || code != http.StatusOK {
		t.Fatalf("TLS passthrough: %d %q %v", code, body, err)
	}

	// Server-first TCP: no wait on a port a Service declares tcp; the
	// detection timeout, counted and logged, on an undeclared one.
	fallbacks := func() float64 {
		return metricValue(client.adminGet(t, "/metrics"), "weft_protocol_detection_fallbacks_total", `reason="timeout"`)
	}
	before := fallbacks()
	if _, err := greet(client.ns, w.ip+":3306"); err != nil {
		t.Fatal(err)
	}
	if after := fallbacks(); after != before {
		t.Errorf("a connection to a port declared tcp waited for protocol detection (%v fallbacks, was %v)", after, before)
	}
	took, err := greet(client.ns, w.ip+":3307")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server-first greeting on an undeclared port after %v", took)
	if after := fallbacks(); after != before+1 {
		t.Errorf("detection fallbacks %v → %v, want one more for the undeclared server-first port", before, after)
	}
	if err := logged(client.proxy.output(), "protocol detection timed out", w.ip+":3307"); err != nil {
		t.Errorf("the fallback is not logged: %v", err)
	}
	// TCP that passes through is counted like any TCP proxy's.
	eventually(t, 10*time.Second, "passthrough TCP counted", func() error {
		if v := metricValue(client.adminGet(t, "/metrics"), "weft_tcp_connections_closed_total",
			`destination_service="PassthroughCluster"`); v < 2 {
			return fmt.Errorf("%v closed PassthroughCluster connections, want the two greetings:\n%s", v,
				grepLines(client.adminGet(t, "/metrics"), "weft_tcp_connections"))
		}
		return nil
	})

	// REGISTRY_ONLY.
	m.apply(t, "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: {name: default}\nspec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")
	attempt, refused := 0, ""
	eventually(t, 30*time.Second, "HTTP to an unlisted destination refused", func() error {
		attempt++
		path := fmt.Sprintf("/refused-%d", attempt)
		code, body, err := curlIn(t, client.ns, "-D", "-", "http://plain.world.example:8081"+path)
		if err != nil || code != http.StatusBadGateway || !regexp.MustCompile(`(?i)x-weft-error: egress_denied`).MatchString(body) {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		refused = path
		return nil
	})
	for _, h := range w.hits() {
		if h.path == refused {
			t.Errorf("a refused request reached the world: %+v", h)
		}
	}
	if code, body, err := curlIn(t, client.ns, "http://api.partner.example/again"); err != nil || code != http.StatusOK {
		t.Errorf("REGISTRY_ONLY, listed host: %d %q %v", code, body, err)
	}
	// A DNS-resolution ExternalService: the app resolved it (through the
	// pod's resolver); the request goes where the app sent it.
	if code, body, err := curlIn(t, client.ns, "http://dyn.world.example:8081/d"); err != nil || code != http.StatusOK || body != "world dyn.world.example:8081 /d" {
		t.Errorf("REGISTRY_ONLY, listed DNS-resolution host: %d %q %v", code, body, err)
	}
	if !resolver.asked("dyn.world.example") {
		t.Errorf("the DNS-resolution host was not resolved by the pod's resolver")
	}
	if code, body, err := curlIn(t, client.ns, "http://gated.partner.example/again"); err != nil || code != http.StatusOK {
		t.Errorf("REGISTRY_ONLY, listed host through the gateway: %d %q %v", code, body, err)
	}
	if code, body, err := secure("secure.partner.example"); err != nil || code != http.StatusOK {
		t.Errorf("REGISTRY_ONLY, TLS to a listed SNI: %d %q %v", code, body, err)
	}
	if code, body, err := secure("other.world.example"); err == nil {
		t.Errorf("REGISTRY_ONLY, TLS to an unlisted SNI went through: %d %q", code, body)
	}
	if _, err := greet(client.ns, w.ip+":3307"); err == nil {
		t.Errorf("REGISTRY_ONLY, TCP to an unlisted destination went through")
	}
	if err := logged(client.proxy.output(), "egress_denied"); err != nil {
		t.Errorf("the refusals are not logged: %v", err)
	}
	if code, body, err := curlIn(t, client.ns, "http://payments:8080/"); err != nil || code != http.StatusOK {
		t.Errorf("REGISTRY_ONLY, a mesh service: %d %q %v", code, body, err)
	}
}
