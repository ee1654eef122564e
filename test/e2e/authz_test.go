package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/internal/testpki"
)

// authzConfig: catalog (http, PERMISSIVE, so plaintext clients reach it)
// guarded by a DENY and an ALLOW policy; db (tcp, STRICT) open to web only.
const authzConfig = `
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog}
spec:
  ports: [{port: 8080, protocol: http}]
  mtls: {mode: PERMISSIVE}
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: db}
spec:
  ports: [{port: 5432, protocol: tcp}]
---
apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: deny-admin}
spec:
  service: catalog
  action: DENY
  rules:
  - name: admin
    from: [{unauthenticated: true}, {namespaces: [batch]}]
    to: [{paths: [{prefix: /admin}]}]
  - name: no-delete
    from: [{services: [web]}]
    to: [{methods: [DELETE]}]
---
apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: readers}
spec:
  service: catalog
  rules:
  - name: web
    from: [{services: [web]}]
  - name: batch
    from: [{namespaces: [batch]}]
    to: [{methods: [GET], paths: [{prefix: /reports}]}]
  - name: public
    from: [{unauthenticated: true}]
    to: [{methods: [GET, HEAD], paths: [{prefix: /public}]}, {methods: [PUT], ports: [8080]}]
  - name: other-port
    from: [{unauthenticated: true}]
    to: [{methods: [POST], ports: [9090]}]
  - name: debug
    from: [{identities: ["spiffe://weft.local/ns/ops/sa/*"]}]
    to: [{headers: [{name: x-debug-token, exact: letmein}]}]
---
apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: db-clients}
spec:
  service: db
  rules:
  - from: [{services: [web]}]
    to: [{ports: [5432]}]
`

// identityClient is an HTTPS client that presents a certificate the mesh
// root signed for id: a source the test can name at will, as a workload
// with a stolen or mis-issued certificate could.
func identityClient(t *testing.T, root *testpki.CA, id spiffe.ID) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{Certificates: []tls.Certificate{root.Issue(t, id, testpki.Options{})}, InsecureSkipVerify: true, NextProtos: []string{"h2"}},
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestAuthzMatrix sends requests from many sources (a real mesh proxy,
// certificates of other namespaces and services, plaintext) with different
// methods, paths, headers and ports to a guarded service, and checks each
// answer and the rule that refused it.
func TestAuthzMatrix(t *testing.T) {
	etcdURL := startEtcd(t)
	cp := startControl(t, controlOpts{etcd: []string{etcdURL}})
	root := meshRoot(t, etcdURL)
	cp.apply(t, authzConfig)

	catalogIP := nextIP()
	app := startBackend(t, catalogIP, "catalog", nil)
	catalog := startMeshSidecar(t, cp, sidecarOpts{service: "catalog", app: app.addr, ip: catalogIP}).waitReady(t)
	dbIP := nextIP()
	db := startMeshSidecar(t, cp, sidecarOpts{service: "db", app: startEcho(t, dbIP), ip: dbIP}).waitReady(t)
	web := startMeshSidecar(t, cp, sidecarOpts{service: "web", upstreams: []string{"catalog", "db"}}).waitReady(t)
	waitEndpoints(t, web, "catalog", "db")

	id := func(ns, svc string) spiffe.ID {
		return spiffe.ID{TrustDomain: "weft.local", Namespace: ns, Service: svc}
	}
	clients := map[string]*http.Client{
		"batch":     identityClient(t, root, id("batch", "report")),
		"ops":       identityClient(t, root, id("ops", "debugger")),
		"evil":      identityClient(t, root, id("default", "evil")),
		"plaintext": {Timeout: 10 * time.Second},
	}
	send := func(source, method, path string, header ...string) result {
		var url string
		c := trafficClient
		switch source {
		case "web":
			url = "http://" + web.upstreams["catalog"] + path
		case "plaintext":
			url, c = "http://"+catalog.inbound+path, clients[source]
		default:
			url, c = "https://"+catalog.inbound+path, clients[source]
		}
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			return result{err: err}
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return result{code: resp.StatusCode, header: resp.Header, body: string(b)}
	}

	cases := []struct {
		source, method, path string
		header               []string
		code                 int
		deniedBy             string
	}{
		{source: "web", method: "GET", path: "/items", code: 200},
		{source: "web", method: "POST", path: "/items", code: 200},
		{source: "web", method: "GET", path: "/admin/users", code: 200},
		{source: "web", method: "DELETE", path: "/items/1", code: 403, deniedBy: "default/deny-admin/no-delete"},
		{source: "batch", method: "GET", path: "/reports/daily", code: 200},
		{source: "batch", method: "POST", path: "/reports/daily", code: 403, deniedBy: "default-deny"},
		{source: "batch", method: "GET", path: "/reportsx", code: 403, deniedBy: "default-deny"},
		{source: "batch", method: "GET", path: "/admin/reports", code: 403, deniedBy: "default/deny-admin/admin"},
		{source: "plaintext", method: "GET", path: "/public/logo.png", code: 200},
		{source: "plaintext", method: "HEAD", path: "/public", code: 200},
		{source: "plaintext", method: "GET", path: "/items", code: 403, deniedBy: "default-deny"},
		{source: "plaintext", method: "GET", path: "/admin", code: 403, deniedBy: "default/deny-admin/admin"},
		{source: "plaintext", method: "GET", path: "/public/../admin/keys", code: 403, deniedBy: "default/deny-admin/admin"},
		{source: "plaintext", method: "PUT", path: "/uploads/1", code: 200},
		{source: "plaintext", method: "POST", path: "/public/form", code: 403, deniedBy: "default-deny"},
		{source: "ops", method: "GET", path: "/debug/vars", header: []string{"x-debug-token", "letmein"}, code: 200},
		{source: "ops", method: "GET", path: "/debug/vars", code: 403, deniedBy: "default-deny"},
		{source: "ops", method: "GET", path: "/debug/vars", header: []string{"x-debug-token", "guess"}, code: 403, deniedBy: "default-deny"},
		{source: "evil", method: "GET", path: "/items", code: 403, deniedBy: "default-deny"},
		{source: "evil", method: "GET", path: "/public/logo.png", code: 403, deniedBy: "default-deny"},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%s %s %s %v", tc.source, tc.method, tc.path, tc.header)
		hits := app.hits.Load()
		r := send(tc.source, tc.method, tc.path, tc.header...)
		if r.err != nil {
			t.Errorf("%s: %v", name, r.err)
			continue
		}
		if r.code != tc.code || r.header.Get("weft-denied-by") != tc.deniedBy {
			t.Errorf("%s: %d denied by %q, want %d denied by %q (body %q)", name, r.code, r.header.Get("weft-denied-by"), tc.code, tc.deniedBy, r.body)
		}
		if reached := app.hits.Load() != hits; reached != (tc.code == 200) {
			t.Errorf("%s: reached the app = %v", name, reached)
		}
	}

	// The attack: a genuine mesh certificate whose identity no rule allows
	// is refused, and the refusal is logged with that identity.
	eventually(t, 5*time.Second, "the refusal of evil in catalog's log", func() error {
		out := catalog.output()
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "request refused") && strings.Contains(line, "spiffe://weft.local/ns/default/sa/evil") &&
				strings.Contains(line, "default-deny") {
				return nil
			}
		}
		return fmt.Errorf("no refusal of evil logged")
	})

	// Status: each policy reached the one proxy of its service, and the
	// rule for a port catalog does not serve is reported.
	eventually(t, 10*time.Second, "every policy applied", func() error {
		items, err := cp.client.PolicyStatuses(context.Background(), "AccessPolicy", "default")
		if err != nil {
			return err
		}
		if len(items) != 3 {
			return fmt.Errorf("%d policies, want 3", len(items))
		}
		for _, it := range items {
			if it.Phase != client.RouteApplied || it.Proxies == nil || *it.Proxies != 1 {
				return fmt.Errorf("%s: %s %+v", it.Name, it.Phase, it)
			}
		}
		if w := items[2].Warnings; items[2].Name != "readers" || len(w) != 2 || !strings.Contains(w[0], "(other-port).to[0] can never match: service catalog serves port 8080, not 9090") {
			return fmt.Errorf("readers warnings: %q", w)
		}
		return nil
	})

	t.Run("tcp", func(t *testing.T) {
		// web may use db: bytes echo back through both proxies.
		c, err := net.DialTimeout("tcp", web.upstreams["db"], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "ping"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("web to db: %q %v", buf, err)
		}

		// Another mesh identity completes the handshake, then is cut off
		// before a byte reaches the app.
		tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", db.inbound, &tls.Config{
			Certificates:       []tls.Certificate{root.Issue(t, id("default", "evil"), testpki.Options{})},
			InsecureSkipVerify: true, NextProtos: []string{"weft-tcp"},
		})
		if err != nil {
			t.Fatalf("evil handshake: %v", err)
		}
		defer tc.Close()
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(tc, "ping")
		if n, err := tc.Read(buf); err == nil {
			t.Fatalf("evil read %q from db: the connection was not closed", buf[:n])
		}
		eventually(t, 5*time.Second, "the refusal of evil in db's log", func() error {
			for _, line := range strings.Split(db.output(), "\n") {
				if strings.Contains(line, "connection refused") && strings.Contains(line, "spiffe://weft.local/ns/default/sa/evil") &&
					strings.Contains(line, "default-deny") {
					return nil
				}
			}
			return fmt.Errorf("no refusal of evil logged")
		})
		// The access log records TCP denials by default, as JSON.
		eventually(t, 5*time.Second, "the denial in db's access log", func() error {
			for _, line := range strings.Split(db.output(), "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "{") && strings.Contains(line, `"denied"`) &&
					strings.Contains(line, "spiffe://weft.local/ns/default/sa/evil") {
					return nil
				}
			}
			return fmt.Errorf("no access log line for the denied connection")
		})
	})
}

// startEcho runs a TCP app on ip that echoes until the client half-closes.
func startEcho(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return l.Addr().String()
}
