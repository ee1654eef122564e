package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
)

// telemetryConfig: catalog (http) that refuses web's requests to /admin.
const telemetryConfig = `
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog}
spec:
  ports: [{port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: no-admin}
spec:
  service: catalog
  action: DENY
  rules:
  - name: admin
    from: [{services: [web]}]
    to: [{paths: [{prefix: /admin}]}]
`

// telemetryMesh starts a control plane with telemetryConfig, a catalog
// workload whose app fails /fail with a 500, and a web client.
func telemetryMesh(t *testing.T) (cp *controlPlane, catalog, web *sidecar) {
	t.Helper()
	// Scraping every second keeps the stat test short (and exercises the flag).
	ip := nextIP()
	a := distinctAddrs(t, ip, 3)
	cp = &controlPlane{dataDir: t.TempDir(), grpc: a[0], api: a[1], dash: a[2]}
	cp.proc = startProc(t, "control-"+ip, append(cp.args(), "--scrape-interval", "1s")...)
	cp.waitUp(t)
	cp.apply(t, telemetryConfig)
	ip = nextIP()
	app := startBackend(t, ip, "catalog", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "catalog %s %s", r.Method, r.URL.Path)
	}))
	catalog = startMeshSidecar(t, cp, sidecarOpts{service: "catalog", app: app.addr, ip: ip}).waitReady(t)
	web = startMeshSidecar(t, cp, sidecarOpts{service: "web", upstreams: []string{"catalog"}}).waitReady(t)
	waitEndpoints(t, web, "catalog")
	return cp, catalog, web
}

// accessLines are the access log lines (JSON objects with a bytes_sent
// field) in a proxy's output.
func accessLines(out string) []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if _, ok := m["bytes_sent"]; ok {
			lines = append(lines, m)
		}
	}
	return lines
}

// TestTelemetryAccessLogDenials: with no accessLog in the Mesh, a request
// refused by an AccessPolicy is logged by the refusing proxy, as JSON on
// its stdout, with who asked for what and why it was refused; an
// allowed request is not logged.
func TestTelemetryAccessLogDenials(t *testing.T) {
	cp, catalog, web := telemetryMesh(t)
	base := "http://" + web.upstreams["catalog"]
	eventually(t, 15*time.Second, "the policy refuses /admin", func() error {
		if r := doGet(base+"/admin/users", "X-Request-Id", "audit-1"); r.code != http.StatusForbidden {
			return fmt.Errorf("GET /admin/users: %d %v", r.code, r.err)
		}
		return nil
	})
	if r := doGet(base+"/ok", "X-Request-Id", "fine-1"); r.code != http.StatusOK {
		t.Fatalf("GET /ok: %d %v", r.code, r.err)
	}

	var denial map[string]any
	eventually(t, 10*time.Second, "the denial in catalog's access log", func() error {
		for _, l := range accessLines(catalog.output()) {
			if l["request_id"] == "audit-1" {
				denial = l
				return nil
			}
		}
		return fmt.Errorf("no access log line for the denied request in:\n%s", catalog.output())
	})
	t.Logf("access log line: %v", denial)
	want := map[string]any{
		"direction": "inbound", "method": "GET", "path": "/admin/users", "status": float64(403),
		"flags": "denied", "source": "spiffe://weft.local/ns/default/sa/web",
		"destination": "spiffe://weft.local/ns/default/sa/catalog", "tls_version": "TLSv1.3",
	}
	for k, v := range want {
		if denial[k] != v {
			t.Errorf("access log %s = %v, want %v (line %v)", k, denial[k], v, denial)
		}
	}
	for _, k := range []string{"time", "authority", "duration_ms", "bytes_received", "route"} {
		if _, ok := denial[k]; !ok {
			t.Errorf("access log line has no %s: %v", k, denial)
		}
	}
	for _, l := range accessLines(catalog.output()) {
		if l["request_id"] == "fine-1" {
			t.Errorf("an allowed request was logged with mode denials: %v", l)
		}
	}

	// Full logging, as text, is one Mesh field away.
	cp.apply(t, "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: {name: default}\nspec:\n  accessLog: {mode: all, format: text}\n")
	eventually(t, 15*time.Second, "allowed requests logged as text", func() error {
		doGet(base+"/ok", "X-Request-Id", "fine-2")
		for _, line := range strings.Split(catalog.output(), "\n") {
			if strings.Contains(line, "request_id=fine-2") {
				if !strings.Contains(line, "direction=inbound") || !strings.Contains(line, "status=200") || !strings.Contains(line, "path=/ok") {
					t.Fatalf("text access log line: %s", line)
				}
				return nil
			}
		}
		return fmt.Errorf("no text line for an allowed request")
	})
}

// steadyTraffic sends rps requests a second from web to catalog, one in
// ten to /fail, until stop is called.
func steadyTraffic(t *testing.T, url string, rps int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			path := "/items?n=" + fmt.Sprint(i)
			if i%10 == 9 {
				path = "/fail"
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				doGet(url+path, "Authorization", "Bearer tap-secret", "X-Test", "telemetry")
			}()
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// TestTelemetryStatTapTopProxyConfig: under steady known traffic, weft
// stat reports its rate and success rate, weft tap streams it with the
// credential redacted, weft top ranks its paths, and weft proxy-config
// lists the proxies' real clusters.
func TestTelemetryStatTapTopProxyConfig(t *testing.T) {
	cp, catalog, web := telemetryMesh(t)
	const rps = 20
	stop := steadyTraffic(t, "http://"+web.upstreams["catalog"], rps)

	// The aggregator scrapes every second: once the window has passed, it
	// holds only steady traffic.
	var st client.Stats
	eventually(t, 60*time.Second, "weft stat shows the traffic", func() error {
		out, err := weftCLI(t, cp, "stat", "catalog", "--window", "5s", "-o", "json")
		if err != nil {
			return fmt.Errorf("weft stat: %v\n%s", err, out)
		}
		st = client.Stats{}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return fmt.Errorf("decode %q: %v", out, err)
		}
		if len(st.Services) != 1 || st.Services[0].SuccessRate == nil {
			return fmt.Errorf("no catalog traffic yet: %s", out)
		}
		s := st.Services[0]
		if math.Abs(s.RPS-rps) > rps*0.25 || math.Abs(*s.SuccessRate-0.9) > 0.04 {
			return fmt.Errorf("catalog: %.2f rps, success %.3f; want about %d and 0.9", s.RPS, *s.SuccessRate, rps)
		}
		return nil
	})
	s := st.Services[0]
	if s.Instances != 1 || s.MTLSShare == nil || *s.MTLSShare != 1 || s.P50Ms == nil {
		t.Errorf("catalog: %+v", s)
	}
	var edge *client.EdgeStats
	for i := range st.Edges {
		if st.Edges[i].From == "web.default" && st.Edges[i].To == "catalog.default" {
			edge = &st.Edges[i]
		}
	}
	if edge == nil || math.Abs(edge.RPS-rps) > rps*0.25 {
		t.Errorf("no web -> catalog edge at about %d rps in %+v", rps, st.Edges)
	}
	table, err := weftCLI(t, cp, "stat", "catalog")
	t.Logf("weft stat catalog:\n%s", table)
	if err != nil || !strings.Contains(table, "catalog") || !strings.Contains(table, "SUCCESS") {
		t.Errorf("weft stat: %v\n%s", err, table)
	}

	// weft tap: live requests, headers included, the credential redacted.
	tap := startCLI(t, cp, "tap", "catalog", "--path", "/items", "-o", "json", "--max", "5")
	tapOut, err := tap.wait(30 * time.Second)
	if err != nil {
		t.Fatalf("weft tap --max 5: %v\n%s", err, tapOut)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(tapOut), "\n") {
		var ev client.TapEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("tap line %q: %v", line, err)
		}
		n++
		if !strings.HasPrefix(ev.Path, "/items") || ev.Method != "GET" || ev.Status != 200 || !ev.MTLS ||
			ev.Source != "web.default" || ev.Direction != "inbound" || !strings.HasPrefix(ev.Workload, "catalog.default@") {
			t.Errorf("tap event %+v", ev)
		}
		if got := ev.RequestHdr["Authorization"]; len(got) != 1 || got[0] != "<redacted>" {
			t.Errorf("tap shows Authorization %q, want it redacted", got)
		}
		if got := ev.RequestHdr["X-Test"]; len(got) != 1 || got[0] != "telemetry" {
			t.Errorf("tap shows X-Test %q, want the header as sent", got)
		}
		if strings.Contains(line, "tap-secret") {
			t.Errorf("the credential leaked through tap: %s", line)
		}
	}
	if n != 5 {
		t.Errorf("weft tap --max 5 printed %d events", n)
	}

	top, err := weftCLI(t, cp, "top", "catalog", "--once", "--duration", "3s")
	t.Logf("weft top catalog --once:\n%s", top)
	if err != nil || !strings.Contains(top, "/items") || !strings.Contains(top, "/fail") || !strings.Contains(top, "web.default") {
		t.Errorf("weft top: %v\n%s", err, top)
	}
	stop()

	// weft proxy-config reads the proxies' live config.
	clusters, err := weftCLI(t, cp, "proxy-config", "web.default@"+web.inbound, "clusters")
	t.Logf("weft proxy-config web clusters:\n%s", clusters)
	if err != nil || !strings.Contains(clusters, "outbound|catalog.default") || !strings.Contains(clusters, "spiffe://weft.local/ns/default/sa/catalog") ||
		!strings.Contains(clusters, "inbound|web.default") {
		t.Errorf("weft proxy-config web clusters: %v\n%s", err, clusters)
	}
	listeners, err := weftCLI(t, cp, "proxy-config", "catalog.default@"+catalog.inbound, "listeners")
	if err != nil || !strings.Contains(listeners, "inbound") || !strings.Contains(listeners, catalog.inbound) {
		t.Errorf("weft proxy-config catalog listeners: %v\n%s", err, listeners)
	}
	endpoints, err := weftCLI(t, cp, "proxy-config", "web.default@"+web.inbound, "endpoints")
	if err != nil || !strings.Contains(endpoints, catalog.inbound) {
		t.Errorf("weft proxy-config web endpoints: %v\n%s", err, endpoints)
	}
	secrets, err := weftCLI(t, cp, "proxy-config", "web.default@"+web.inbound, "secrets")
	if err != nil || !strings.Contains(secrets, "spiffe://weft.local/ns/default/sa/web") || strings.Contains(secrets, "PRIVATE KEY") {
		t.Errorf("weft proxy-config web secrets: %v\n%s", err, secrets)
	}
}
