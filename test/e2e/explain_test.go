package e2e

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
)

// explainCLI runs `weft explain` against cp with args and returns its output.
func explainCLI(t *testing.T, cp *controlPlane, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(weftBin, append([]string{"--config", filepath.Join(cp.dataDir, "config"), "explain"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestExplain asks `weft explain` about requests through a canary Route
// between real proxies, and checks what it says against the live config.
func TestExplain(t *testing.T) {
	cp := startMeshControl(t)
	ws := startWorkloads(t, cp, "catalog", []string{"v1", "v2"}, nil)
	c := startClient(t, cp, "catalog")
	applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: catalog}
spec:
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
  - name: canary
    match: [{path: {prefix: /api}, method: GET}]
    backends: [{subset: v1, weight: 80}, {subset: v2, weight: 20}]
    timeout: 2s
`, c)

	out, err := explainCLI(t, cp, "--from", "client", "--to", "catalog", "--path", "/api/items")
	if err != nil {
		t.Fatalf("weft explain: %v\n%s", err, out)
	}
	for _, want := range []string{
		"client.default -> catalog.default (http)  GET /api/items",
		"rule canary of the Route of catalog.default",
		"timeout:   2s",
		"80.0%  " + ws[0].side.inbound,
		"20.0%  " + ws[1].side.inbound,
		"verdict:   forwarded",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Another method misses the rule: the default route, both endpoints.
	out, err = explainCLI(t, cp, "--from", "client", "--to", "catalog", "--method", "POST", "--path", "/api/items", "-o", "json")
	if err != nil {
		t.Fatalf("weft explain: %v\n%s", err, out)
	}
	var e client.Explanation
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if e.Route == nil || e.Route.Name != "default" || len(e.Backends) != 1 || len(e.Backends[0].Endpoints) != 2 {
		t.Errorf("POST: got %+v, want the default route to both endpoints", e)
	}

	// An AccessPolicy that denies the client's writes: explain names the
	// rule, and a real request gets the same answer.
	applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: read-only}
spec:
  service: catalog
  action: DENY
  rules:
  - name: writes
    from: [{services: [client]}]
    to: [{methods: [POST, DELETE]}]
`)
	out, err = explainCLI(t, cp, "--from", "client", "--to", "catalog", "--method", "POST", "--path", "/api/items")
	if err != nil {
		t.Fatalf("weft explain: %v\n%s", err, out)
	}
	for _, want := range []string{"envoy.filters.http.rbac: reply 403", "[weft-denied-by: default/read-only/writes]", "verdict:   refused by envoy.filters.http.rbac: 403"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	eventually(t, 10*time.Second, "a real POST refused as explained", func() error {
		req, _ := http.NewRequest(http.MethodPost, "http://"+c.upstreams["catalog"]+"/api/items", strings.NewReader("x"))
		if res := do(req); res.code != http.StatusForbidden || res.header.Get("weft-denied-by") != "default/read-only/writes" {
			return errorf("got %d denied-by %q, want 403 by default/read-only/writes", res.code, res.header.Get("weft-denied-by"))
		}
		return nil
	})

	// Bad input is named.
	out, err = explainCLI(t, cp, "--from", "client", "--to", "nosuch")
	if err == nil || !strings.Contains(out, "unknown service nosuch.default") {
		t.Errorf("unknown service: err %v, output %q; want it named", err, out)
	}
	out, err = explainCLI(t, cp, "--from", "client")
	if err == nil || !strings.Contains(out, "--from and --to are required") {
		t.Errorf("missing --to: err %v, output %q", err, out)
	}
}
