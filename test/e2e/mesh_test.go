package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// meshFixture is a control plane, two catalog versions and a frontend sidecar.
type meshFixture struct {
	cp          *controlPlane
	v1, v2      *backend
	catV1       *sidecar
	catV2       *sidecar
	front       *sidecar
	catalogPort string // frontend's local port for catalog
}

func newMesh(t *testing.T) *meshFixture { return newMeshWith(t, "") }

// newMeshWith applies resources (if any) before the workloads start.
func newMeshWith(t *testing.T, resources string) *meshFixture {
	t.Helper()
	f := &meshFixture{cp: startControl(t, controlOpts{})}
	if resources != "" {
		f.cp.apply(t, resources)
	}
	ipA, ipB := nextIP(), nextIP()
	f.v1 = startBackend(t, ipA, "catalog-v1", nil)
	f.v2 = startBackend(t, ipB, "catalog-v2", nil)
	f.catV1 = startSidecar(t, f.cp, sidecarOpts{service: "catalog", version: "v1", app: f.v1.addr, ip: ipA})
	f.catV2 = startSidecar(t, f.cp, sidecarOpts{service: "catalog", version: "v2", app: f.v2.addr, ip: ipB})
	f.front = startSidecar(t, f.cp, sidecarOpts{service: "frontend", upstreams: []string{"catalog"}, httpProxy: true})
	f.catV1.waitReady(t)
	f.catV2.waitReady(t)
	f.front.waitReady(t)
	f.catalogPort = f.front.upstreams["catalog"]
	// Both catalog endpoints reach the frontend.
	eventually(t, 10*time.Second, "frontend sees both catalog endpoints", func() error {
		c := f.front.adminGet(t, "/clusters")
		if !strings.Contains(c, f.catV1.inbound) || !strings.Contains(c, f.catV2.inbound) {
			return fmt.Errorf("clusters:\n%s", c)
		}
		return nil
	})
	return f
}

func get(t testing.TB, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestHTTPRoundRobinAcrossVersions(t *testing.T) {
	f := newMesh(t)
	counts := map[string]int{}
	for range 100 {
		code, body, _ := get(t, http.DefaultClient, "http://"+f.catalogPort+"/items")
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		counts[strings.Fields(body)[0]]++
	}
	// Round robin over two endpoints: an even split, give or take the start.
	if counts["catalog-v1"] < 45 || counts["catalog-v2"] < 45 {
		t.Fatalf("round robin split = %v, want about 50/50", counts)
	}
}

func TestHTTPProxyRoutesByHost(t *testing.T) {
	f := newMesh(t)
	proxyURL, _ := url.Parse("http://" + f.front.httpProxy)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	for _, host := range []string{"catalog", "catalog.default", "catalog:8080", "catalog.default:8080"} {
		code, body, _ := get(t, c, "http://"+host+"/x")
		if code != 200 || !strings.HasPrefix(body, "catalog-v") {
			t.Fatalf("Host %s: %d %q", host, code, body)
		}
	}
	code, _, _ := get(t, c, "http://nosuchservice/x")
	if code != http.StatusNotFound {
		t.Fatalf("unknown host: status %d, want 404", code)
	}
}

func TestAdminEndpoints(t *testing.T) {
	f := newMesh(t)
	s := f.front
	if err := httpGetOK("http://" + s.admin + "/healthz"); err != nil {
		t.Fatal(err)
	}
	if err := httpGetOK("http://" + s.admin + "/ready"); err != nil {
		t.Fatal(err)
	}
	dump := s.adminGet(t, "/config_dump")
	for _, want := range []string{"outbound|catalog.default", "ROOTCA", "inbound"} {
		if !strings.Contains(dump, want) {
			t.Errorf("/config_dump lacks %q", want)
		}
	}
	if c := s.adminGet(t, "/clusters"); !strings.Contains(c, f.catV1.inbound) {
		t.Errorf("/clusters lacks catalog endpoint %s:\n%s", f.catV1.inbound, c)
	}
	get(t, http.DefaultClient, "http://"+f.catalogPort+"/m")
	m := s.adminGet(t, "/metrics")
	for _, want := range []string{"weft_requests_total", "weft_proxy_xds_connected 1", "weft_proxy_certificate_expiry_timestamp_seconds"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if c := s.adminGet(t, "/certs"); !strings.Contains(c, "spiffe://weft.local/ns/default/sa/frontend") {
		t.Errorf("/certs lacks the SPIFFE ID:\n%s", c)
	}
}
