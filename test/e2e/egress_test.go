package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/internal/testpki"
)

// outside is an HTTP server standing in for the world outside the mesh, on
// its own loopback address. It records the Host and the peer address of
// each request it serves.
type outside struct {
	*backend
	mu    sync.Mutex
	hosts []string
	peers []string
}

func startOutside(t *testing.T) *outside {
	t.Helper()
	o := &outside{}
	o.backend = startBackend(t, nextIP(), "outside", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.hosts = append(o.hosts, r.Host)
		o.peers = append(o.peers, r.RemoteAddr)
		o.mu.Unlock()
		w.Header().Set("x-backend", "outside")
		fmt.Fprintf(w, "outside %s %s", r.Host, r.URL.Path)
	}))
	return o
}

func (o *outside) seen() (hosts, peers []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.hosts...), append([]string(nil), o.peers...)
}

// tlsOutside is an HTTPS server outside the mesh, on its own loopback
// address, with a certificate from ca for host. It answers "<banner> <host>
// <path>" and records how each request arrived: "tls:<SNI>" or "plaintext".
type tlsOutside struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func startTLSOutside(t *testing.T, ca *testpki.CA, host, banner string) *tlsOutside {
	t.Helper()
	o := &tlsOutside{}
	cert := ca.Issue(t, spiffe.ID{}, testpki.Options{DNSNames: []string{host}})
	ln, err := net.Listen("tcp", nextIP()+":0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrival := "plaintext"
		if r.TLS != nil {
			arrival = "tls:" + r.TLS.ServerName
		}
		o.mu.Lock()
		o.seen = append(o.seen, arrival)
		o.mu.Unlock()
		fmt.Fprintf(w, "%s %s %s", banner, r.Host, r.URL.Path)
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return o
}

// arrivals lists how the requests so far arrived.
func (o *tlsOutside) arrivals() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seen...)
}

// servedOverTLS fails t unless every request the server saw so far came
// over TLS with SNI host; it returns them.
func (o *tlsOutside) servedOverTLS(t *testing.T, host string) []string {
	t.Helper()
	seen := o.arrivals()
	for _, s := range seen {
		if s != "tls:"+host {
			t.Errorf("the outside server saw a request %s, want TLS with SNI %s (all: %v)", s, host, seen)
		}
	}
	return seen
}

// eventuallyBody waits until GET u through c answers 200 with body want.
func eventuallyBody(t *testing.T, c *http.Client, within time.Duration, what, u, want string) {
	t.Helper()
	eventually(t, within, what, func() error {
		code, body, _ := getVia(t, c, u)
		if code != 200 || body != want {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
}

// proxyClient sends every request through the sidecar's HTTP proxy port,
// as an app with HTTP_PROXY set does.
func proxyClient(s *sidecar) *http.Client {
	u, _ := url.Parse("http://" + s.httpProxy)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}}
}

func getVia(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestEgressExternalServiceAndRegistryOnly: an app behind a sidecar reaches
// an ExternalService host through the HTTP proxy port, at the address the
// ExternalService gives; under ALLOW_ANY an unlisted host is not routed
// (404); once the Mesh says REGISTRY_ONLY an unlisted host is refused with
// 502, `x-weft-error: egress_denied` and the reason, and the sidecar logs
// the refusal naming the host, while the registered host still works; an
// ExternalService asking for what the proxy cannot do yet (DNS resolution)
// is refused with the reason.
func TestEgressExternalServiceAndRegistryOnly(t *testing.T) {
	cp := startMeshControl(t)
	world := startOutside(t)
	ip, port, err := net.SplitHostPort(world.addr)
	if err != nil {
		t.Fatal(err)
	}
	app := startMeshSidecar(t, cp, sidecarOpts{service: "app", httpProxy: true}).waitReady(t)
	applyConfig(t, cp, fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: partner, namespace: default}
spec:
  hosts: [api.partner.example]
  ports: [{name: web, port: 80, protocol: http}]
  endpoints: [{address: %s, ports: {web: %s}}]
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: resolved, namespace: default}
spec:
  hosts: [resolved.partner.example]
  ports: [{port: 80}]
  resolution: DNS
`, ip, port), app)

	c := proxyClient(app)
	eventuallyBody(t, c, 10*time.Second, "api.partner.example reachable through the HTTP proxy",
		"http://api.partner.example/pay", "outside api.partner.example /pay")
	hosts, _ := world.seen()
	if len(hosts) == 0 || hosts[len(hosts)-1] != "api.partner.example" {
		t.Errorf("the outside server saw hosts %v, want api.partner.example", hosts)
	}
	if code, body, _ := getVia(t, c, "http://api.partner.example:80/pay"); code != 200 {
		t.Errorf("with the port in Host: %d %q", code, body)
	}

	code, body, h := getVia(t, c, "http://resolved.partner.example/x")
	if code != http.StatusBadGateway || h.Get("x-weft-error") != "egress_unsupported" || !strings.Contains(body, "DNS resolution") {
		t.Errorf("ExternalService with DNS resolution: %d %q %v, want 502 egress_unsupported", code, body, h)
	}

	before := world.hits.Load()
	if code, body, _ := getVia(t, c, "http://unlisted.example/x"); code != http.StatusNotFound {
		t.Errorf("ALLOW_ANY, unlisted host: %d %q, want 404 (no route)", code, body)
	}

	applyConfig(t, cp, "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: {name: default}\nspec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n", app)
	eventually(t, 10*time.Second, "unlisted host refused", func() error {
		code, body, h := getVia(t, c, "http://unlisted.example/x")
		if code != http.StatusBadGateway || h.Get("x-weft-error") != "egress_denied" ||
			!strings.Contains(body, "REGISTRY_ONLY") {
			return fmt.Errorf("%d %q %v", code, body, h)
		}
		return nil
	})
	if n := world.hits.Load(); n != before {
		t.Errorf("the outside server got %d requests for unlisted or refused hosts", n-before)
	}
	eventually(t, 5*time.Second, "the refusal logged with the host", func() error {
		for line := range strings.SplitSeq(app.output(), "\n") {
			if strings.Contains(line, "request refused") && strings.Contains(line, "egress_denied") &&
				strings.Contains(line, "unlisted.example") {
				return nil
			}
		}
		return fmt.Errorf("no refusal naming unlisted.example in the sidecar's log:\n%s", app.output())
	})
	if code, body, _ := getVia(t, c, "http://api.partner.example/again"); code != 200 || body != "outside api.partner.example /again" {
		t.Errorf("REGISTRY_ONLY, registered host: %d %q", code, body)
	}
}

// TestEgressTLSOrigination: the app speaks plain HTTP to its sidecar's HTTP
// proxy port; the sidecar opens TLS to the outside HTTPS server, with the
// ExternalService's SNI, verifying the server's certificate against the
// ExternalService's CA and the server name. A server whose certificate is
// not valid for the SNI is refused (503), and nothing reaches it in
// plaintext.
func TestEgressTLSOrigination(t *testing.T) {
	ca := testpki.NewCA(t, "partner-ca")
	world := startTLSOutside(t, ca, "secure.partner.example", "secure")
	ip, port, _ := net.SplitHostPort(world.addr)

	cp := startMeshControl(t)
	app := startMeshSidecar(t, cp, sidecarOpts{service: "app", httpProxy: true}).waitReady(t)
	pemBlock := indent(string(ca.PEM()), 6)
	applyConfig(t, cp, fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: secure, namespace: default}
spec:
  hosts: [secure.partner.example]
  ports: [{name: web, port: 80}]
  endpoints: [{address: %[1]s, ports: {web: %[2]s}}]
  tls:
    mode: originate
    caBundle: |
%[3]s
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: impostor, namespace: default}
spec:
  hosts: [other.partner.example]
  ports: [{name: web, port: 80}]
  endpoints: [{address: %[1]s, ports: {web: %[2]s}}]
  tls:
    mode: originate
    caBundle: |
%[3]s
`, ip, port, pemBlock), app)

	c := proxyClient(app)
	eventuallyBody(t, c, 10*time.Second, "secure.partner.example over originated TLS",
		"http://secure.partner.example/pay", "secure secure.partner.example /pay")
	got := world.servedOverTLS(t, "secure.partner.example")

	// The certificate is not valid for other.partner.example: refused.
	code, body, h := getVia(t, c, "http://other.partner.example/pay")
	if code != http.StatusServiceUnavailable {
		t.Errorf("server certificate not valid for the SNI: %d %q %v, want 503", code, body, h)
	}
	if seen := world.arrivals(); len(seen) != len(got) {
		t.Errorf("the outside server served a request for other.partner.example: %v", seen[len(got):])
	}
}

// TestEgressGatewayOriginatesTLS: an ExternalService with egressGateway is
// sent by the app's sidecar to the egress gateway (`weft proxy --mode
// egress`) over the mesh's mTLS, and the gateway opens TLS to the outside
// HTTPS server (the app speaks plain HTTP). The app's sidecar has no
// cluster of the external host: only the gateway reaches it, and the
// gateway counts the app's request as inbound mTLS. The gateway refuses
// plaintext, and an AccessPolicy on it lets only the services it names out
// (403 default-deny for another mesh service).
func TestEgressGatewayOriginatesTLS(t *testing.T) {
	ca := testpki.NewCA(t, "partner-ca")
	world := startTLSOutside(t, ca, "gated.partner.example", "gated")
	ip, port, _ := net.SplitHostPort(world.addr)

	cp := startMeshControl(t)
	gw := startMeshSidecar(t, cp, sidecarOpts{service: "egress", extra: []string{"--mode", "egress"}}).waitReady(t)
	app := startMeshSidecar(t, cp, sidecarOpts{service: "app", httpProxy: true}).waitReady(t)
	pemBlock := indent(string(ca.PEM()), 6)
	applyConfig(t, cp, fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: gated, namespace: default}
spec:
  hosts: [gated.partner.example]
  ports: [{name: web, port: 80}]
  endpoints: [{address: %s, ports: {web: %s}}]
  egressGateway: egress
  tls:
    mode: originate
    caBundle: |
%s
`, ip, port, pemBlock), app)

	c := proxyClient(app)
	eventuallyBody(t, c, 15*time.Second, "gated.partner.example through the egress gateway",
		"http://gated.partner.example/pay", "gated gated.partner.example /pay")
	world.servedOverTLS(t, "gated.partner.example")

	const external = "outbound|gated.partner.example:80"
	if cl := app.adminGet(t, "/clusters"); strings.Contains(cl, external) || !strings.Contains(cl, "outbound|egress.default") {
		t.Errorf("app sidecar clusters: want outbound|egress.default and no %s:\n%s", external, cl)
	}
	if cl := gw.adminGet(t, "/clusters"); !strings.Contains(cl, external) || !strings.Contains(cl, world.addr) {
		t.Errorf("gateway clusters: want %s with %s:\n%s", external, world.addr, cl)
	}
	inboundFromApp := false
	for line := range strings.SplitSeq(gw.adminGet(t, "/metrics"), "\n") {
		if strings.HasPrefix(line, "weft_requests_total{") && strings.Contains(line, `direction="inbound"`) &&
			strings.Contains(line, `"app"`) && strings.Contains(line, `code="200"`) {
			inboundFromApp = true
		}
	}
	if !inboundFromApp {
		t.Errorf("the gateway counted no inbound request from app:\n%s", gw.adminGet(t, "/metrics"))
	}

	// The gateway serves only what is sent through it.
	if code, body, h := getVia(t, c, "http://gated.partner.example/again"); code != 200 {
		t.Errorf("second request: %d %q %v", code, body, h)
	}
	direct := &http.Client{Timeout: 5 * time.Second}
	if resp, err := direct.Get("http://" + gw.inbound + "/pay"); err == nil {
		resp.Body.Close()
		t.Errorf("plaintext to the gateway's mTLS port: status %d, want a refused handshake", resp.StatusCode)
	}

	// An AccessPolicy on the gateway lets only app out.
	other := startMeshSidecar(t, cp, sidecarOpts{service: "other", httpProxy: true}).waitReady(t)
	oc := proxyClient(other)
	eventually(t, 10*time.Second, "other reaches the gateway before the policy", func() error {
		if code, body, _ := getVia(t, oc, "http://gated.partner.example/o"); code != 200 {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	cp.apply(t, `apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: egress-users}
spec:
  service: egress
  rules:
  - name: app
    from: [{services: [app]}]
`)
	eventually(t, 10*time.Second, "other refused by the gateway's AccessPolicy", func() error {
		code, body, h := getVia(t, oc, "http://gated.partner.example/o")
		if code != http.StatusForbidden || h.Get("weft-denied-by") != "default-deny" {
			return fmt.Errorf("%d %q %v", code, body, h)
		}
		return nil
	})
	if code, body, _ := getVia(t, c, "http://gated.partner.example/still"); code != 200 {
		t.Errorf("app under the gateway's AccessPolicy: %d %q", code, body)
	}
}
