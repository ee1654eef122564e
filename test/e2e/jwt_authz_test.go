package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestJWTClaimsInAccessPolicy: a RequestAuth verifies end users' tokens and
// an AccessPolicy lets only the admins group into /admin, from the claims
// the JWT filter hands the RBAC filter.
func TestJWTClaimsInAccessPolicy(t *testing.T) {
	rs := newJWTSigner(t, "rs-1", false)
	cp := startMeshControl(t)
	cp.apply(t, fmt.Sprintf(`
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog}
spec:
  ports: [{port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: RequestAuth
metadata: {name: catalog}
spec:
  issuers:
  - issuer: https://rs.test
    audiences: [catalog]
    jwks: '%s'
---
apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: admins-only}
spec:
  service: catalog
  action: DENY
  rules:
  - name: not-admin
    to: [{paths: [{prefix: /admin}]}]
    when: [{key: claims.group, notValues: [admins]}]
`, jwtKeySet(rs)))

	catalogIP := nextIP()
	app := startBackend(t, catalogIP, "catalog", nil)
	startMeshSidecar(t, cp, sidecarOpts{service: "catalog", app: app.addr, ip: catalogIP}).waitReady(t)
	web := startMeshSidecar(t, cp, sidecarOpts{service: "web", upstreams: []string{"catalog"}}).waitReady(t)
	waitEndpoints(t, web, "catalog")
	base := "http://" + web.upstreams["catalog"]

	hour := time.Now().Add(time.Hour)
	admin := rs.mint(t, "https://rs.test", "catalog", hour, map[string]any{"group": "admins"})
	user := rs.mint(t, "https://rs.test", "catalog", hour, map[string]any{"group": "users"})

	eventually(t, 15*time.Second, "the policy to refuse a user's /admin", func() error {
		if r := doGet(base+"/admin", "Authorization", "Bearer "+user); r.code != http.StatusForbidden {
			return fmt.Errorf("user on /admin: %d %v", r.code, r.err)
		}
		return nil
	})
	for _, tc := range []struct {
		name, path, token string
		want              int
		deniedBy          string
	}{
		{"admin on /admin", "/admin/users", admin, http.StatusOK, ""},
		{"user on /admin", "/admin/users", user, http.StatusForbidden, "default/admins-only/not-admin"},
		{"no token on /admin", "/admin/users", "", http.StatusForbidden, "default/admins-only/not-admin"},
		{"user elsewhere", "/items", user, http.StatusOK, ""},
		{"no token elsewhere", "/items", "", http.StatusOK, ""},
	} {
		var r result
		if tc.token == "" {
			r = doGet(base + tc.path)
		} else {
			r = doGet(base+tc.path, "Authorization", "Bearer "+tc.token)
		}
		if r.code != tc.want || r.header.Get("weft-denied-by") != tc.deniedBy {
			t.Errorf("%s: %d denied-by %q, want %d %q (%s)", tc.name, r.code, r.header.Get("weft-denied-by"), tc.want, tc.deniedBy, r.body)
		}
	}
}
