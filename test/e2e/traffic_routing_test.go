package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// subsetsPolicy is a DestinationPolicy for service with one subset per version.
func subsetsPolicy(service string, versions ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: weft.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: %s}\nspec:\n  subsets:\n", service)
	for _, v := range versions {
		fmt.Fprintf(&b, "  - {name: %s, labels: {version: %s}}\n", v, v)
	}
	return b.String()
}

const matchingRoute = `
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
  - name: exact
    match: [{path: {exact: /exact}}]
    backends: [{subset: v1}]
  - name: prefix
    match: [{path: {prefix: /api}}]
    backends: [{subset: v2}]
  - name: regex
    match: [{path: {regex: '/items/[0-9]+'}}]
    backends: [{subset: v3}]
  - name: method
    match: [{method: DELETE}]
    backends: [{subset: v4}]
  - name: headers
    match:
    - headers: [{name: x-exact, exact: gold}]
    - headers: [{name: x-prefix, prefix: pre-}]
    - headers: [{name: x-regex, regex: '[0-9]+'}]
    - headers: [{name: x-present, present: true}]
    backends: [{subset: v5}]
  - name: absent
    match: [{path: {prefix: /absent}, headers: [{name: x-block, absent: true}]}]
    backends: [{subset: v1}]
  - name: query
    match:
    - queryParams: [{name: q, exact: "1"}]
    - queryParams: [{name: r, regex: 'a+'}]
    - queryParams: [{name: p, present: true}]
    backends: [{subset: v3}]
  - name: default
    backends: [{subset: v0}]
`

// TestTrafficMatching: a Route's rules match on path (exact, prefix,
// regex), method, headers (exact, prefix, regex, present, absent) and query
// parameters; they are tried in order, the first that fits wins, and the
// rule without match takes the rest.
func TestTrafficMatching(t *testing.T) {
	cp := startMeshControl(t)
	versions := []string{"v0", "v1", "v2", "v3", "v4", "v5"}
	startWorkloads(t, cp, "catalog", versions, nil)
	client := startClient(t, cp, "catalog")
	waitClusterSize(t, client, "outbound|catalog.default", len(versions))
	applyConfig(t, cp, subsetsPolicy("catalog", versions...)+"---"+matchingRoute, client)
	base := "http://" + client.upstreams["catalog"]

	cases := []struct {
		name, method, target string
		hdr                  []string
		want                 string
	}{
		{"path exact", "GET", "/exact", nil, "v1"},
		{"path exact is not a prefix", "GET", "/exact/more", nil, "v0"},
		{"path prefix itself", "GET", "/api", nil, "v2"},
		{"path prefix below", "GET", "/api/v1/items", nil, "v2"},
		{"path prefix is by segment", "GET", "/apis", nil, "v0"},
		{"path regex", "GET", "/items/42", nil, "v3"},
		{"path regex whole path", "GET", "/items/42/reviews", nil, "v0"},
		{"method", "DELETE", "/anything", nil, "v4"},
		{"method other", "PUT", "/anything", nil, "v0"},
		{"header exact", "GET", "/h", []string{"x-exact", "gold"}, "v5"},
		{"header exact mismatch", "GET", "/h", []string{"x-exact", "golden"}, "v0"},
		{"header prefix", "GET", "/h", []string{"x-prefix", "pre-release"}, "v5"},
		{"header prefix mismatch", "GET", "/h", []string{"x-prefix", "release"}, "v0"},
		{"header regex", "GET", "/h", []string{"x-regex", "12345"}, "v5"},
		{"header regex whole value", "GET", "/h", []string{"x-regex", "12a"}, "v0"},
		{"header present", "GET", "/h", []string{"x-present", "anything"}, "v5"},
		{"header absent", "GET", "/absent", nil, "v1"},
		{"header absent but present", "GET", "/absent", []string{"x-block", "1"}, "v0"},
		{"query exact", "GET", "/q?q=1", nil, "v3"},
		{"query exact mismatch", "GET", "/q?q=11", nil, "v0"},
		{"query regex", "GET", "/q?r=aaa", nil, "v3"},
		{"query regex whole value", "GET", "/q?r=aab", nil, "v0"},
		{"query present", "GET", "/q?p=", nil, "v3"},
		{"query decoded", "GET", "/q?q=%31", nil, "v3"},
		{"first rule wins over method", "DELETE", "/exact", nil, "v1"},
		{"first rule wins over query", "GET", "/api?q=1", nil, "v2"},
		{"first rule wins over headers", "GET", "/items/7", []string{"x-exact", "gold"}, "v3"},
		{"default", "GET", "/", nil, "v0"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, base+c.target, nil)
		for i := 0; i+1 < len(c.hdr); i += 2 {
			req.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		r := do(req)
		if r.err != nil || r.code != 200 || r.backend != "catalog-"+c.want {
			t.Errorf("%s: %s %s %v: got %d from %q (%v), want catalog-%s", c.name, c.method, c.target, c.hdr, r.code, r.backend, r.err, c.want)
		}
	}
}

const splitServices = `
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: db}
spec:
  ports: [{port: 5432, protocol: tcp}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: db-next}
spec:
  ports: [{port: 5432, protocol: tcp}]
`

func splitRoute(beta bool, v1, v2 int) string {
	r := "apiVersion: weft.dev/v1alpha1\nkind: Route\nmetadata: {name: catalog}\nspec:\n  service: catalog\n  rules:\n"
	if beta {
		r += "  - match: [{headers: [{name: x-user-group, exact: beta}]}]\n    backends: [{subset: v2}]\n"
	}
	return r + fmt.Sprintf("  - backends: [{subset: v1, weight: %d}, {subset: v2, weight: %d}]\n", v1, v2)
}

// TestTrafficSplit: weighted splits of HTTP requests and of TCP
// connections, header-based A/B routing, and a blue-green switch under load.
func TestTrafficSplit(t *testing.T) {
	cp := startMeshControl(t)
	cp.apply(t, splitServices)
	startWorkloads(t, cp, "catalog", []string{"v1", "v2"}, nil)
	dbA, dbB := startTCPNamer(t, cp, "db"), startTCPNamer(t, cp, "db-next")
	client := startClient(t, cp, "catalog", "db")
	waitClusterSize(t, client, "outbound|catalog.default", 2)
	url := "http://" + client.upstreams["catalog"] + "/items"

	t.Run("weighted 90/10", func(t *testing.T) {
		applyConfig(t, cp, subsetsPolicy("catalog", "v1", "v2")+"---\n"+splitRoute(false, 90, 10), client)
		ta := fire(2000, 8, func(int) result { return doGet(url) })
		if ta.failed() > 0 {
			t.Fatalf("failures: %s", ta)
		}
		if s := ta.share("catalog-v2"); !within(s, 0.10, 0.03) {
			t.Fatalf("v2 got %.1f%% of 2000 requests, want 10%% ± 3: %s", 100*s, countsOf(ta.backends))
		}
	})

	t.Run("header A/B", func(t *testing.T) {
		applyConfig(t, cp, subsetsPolicy("catalog", "v1", "v2")+"---\n"+splitRoute(true, 100, 0), client)
		beta := fire(200, 4, func(int) result { return doGet(url, "x-user-group", "beta") })
		if beta.failed() > 0 || beta.backends["catalog-v2"] != 200 {
			t.Fatalf("x-user-group: beta: want all on v2: %s", beta)
		}
		others := fire(200, 4, func(i int) result {
			if i%2 == 0 {
				return doGet(url, "x-user-group", "alpha")
			}
			return doGet(url)
		})
		if others.failed() > 0 || others.backends["catalog-v1"] != 200 {
			t.Fatalf("other users: want all on v1: %s", others)
		}
	})

	t.Run("blue-green under load", func(t *testing.T) {
		applyConfig(t, cp, subsetsPolicy("catalog", "v1", "v2")+"---\n"+splitRoute(false, 100, 0), client)
		done := make(chan *tally)
		go func() {
			done <- paced(150, 5*time.Second, 16, func(int) result { return doGet(url) })
		}()
		time.Sleep(1500 * time.Millisecond)
		m := cp.mark(t, client)
		cp.apply(t, splitRoute(false, 0, 100))
		if msg := settle(t, cp, m); msg != "" {
			t.Fatalf("switch NACKed: %s", msg)
		}
		ta := <-done
		t.Logf("%s", ta)
		if ta.failed() > 0 {
			t.Fatalf("%d requests failed during the switch: %s", ta.failed(), ta)
		}
		if ta.total < 5*100 {
			t.Fatalf("only %d requests in 5s, want at least 100 per second", ta.total)
		}
		if ta.backends["catalog-v1"] == 0 || ta.backends["catalog-v2"] == 0 {
			t.Fatalf("want answers from v1 before the switch and v2 after it: %s", ta)
		}
		// After the switch, everything goes to v2.
		after := fire(100, 4, func(int) result { return doGet(url) })
		if after.backends["catalog-v2"] != 100 {
			t.Fatalf("after the switch: %s", after)
		}
	})

	t.Run("tcp weighted", func(t *testing.T) {
		applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: db}
spec:
  service: db
  rules:
  - backends: [{weight: 3}, {service: db-next, weight: 1}]
`, client)
		waitClusterSize(t, client, "outbound|db-next.default", 1)
		waitClusterSize(t, client, "outbound|db.default", 1)
		const n = 1000
		ta := fire(n, 8, func(int) result { return tcpName(client.upstreams["db"]) })
		if ta.failed() > 0 {
			t.Fatalf("failures: %s", ta)
		}
		// ±5 points is 3.6 standard deviations for 1000 connections at 25%.
		if s := ta.share("db-next"); !within(s, 0.25, 0.05) {
			t.Fatalf("db-next got %.1f%% of %d connections, want 25%% ± 5: %s", 100*s, n, countsOf(ta.backends))
		}
		if dbA.hits.Load()+dbB.hits.Load() != n {
			t.Errorf("apps saw %d + %d connections, want %d", dbA.hits.Load(), dbB.hits.Load(), n)
		}
	})
}

// tcpNamer is a TCP app, behind its own sidecar, that writes its name on
// every connection and closes it.
type tcpNamer struct {
	hits atomic.Int64
}

func startTCPNamer(t *testing.T, cp *controlPlane, service string) *tcpNamer {
	t.Helper()
	ip := nextIP()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	n := &tcpNamer{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.hits.Add(1)
			go func() {
				io.WriteString(c, service)
				c.Close()
			}()
		}
	}()
	startMeshSidecar(t, cp, sidecarOpts{service: service, app: ln.Addr().String(), ip: ip}).waitReady(t)
	return n
}

// tcpName connects to addr and reads the app's name.
func tcpName(addr string) result {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return result{err: err}
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || len(b) == 0 {
		return result{err: fmt.Errorf("read: %q %v", b, err), elapsed: time.Since(start)}
	}
	return result{code: 200, backend: string(b), elapsed: time.Since(start)}
}

// TestTrafficHeaderEdits: a rule sets, adds and removes request headers
// (as the app sees them) and response headers (as the client sees them).
func TestTrafficHeaderEdits(t *testing.T) {
	cp := startMeshControl(t)
	startWorkloads(t, cp, "hdr", []string{"v1"}, func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("x-backend", name)
			w.Header().Set("x-resp-set", "from-app")
			w.Header().Set("x-resp-add", "from-app")
			w.Header().Set("x-resp-remove", "from-app")
			json.NewEncoder(w).Encode(r.Header)
		})
	})
	client := startClient(t, cp, "hdr")
	waitClusterSize(t, client, "outbound|hdr.default", 1)
	applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: hdr}
spec:
  service: hdr
  rules:
  - backends: [{}]
    requestHeaders:
      set: [{name: x-set, value: by-route}]
      add: [{name: x-add, value: by-route}]
      remove: [x-remove]
    responseHeaders:
      set: [{name: x-resp-set, value: by-route}]
      add: [{name: x-resp-add, value: by-route}]
      remove: [x-resp-remove]
`, client)
	r := doGet("http://"+client.upstreams["hdr"]+"/", "x-set", "by-client", "x-add", "by-client", "x-remove", "by-client")
	if r.err != nil || r.code != 200 {
		t.Fatalf("got %d %v %s", r.code, r.err, r.body)
	}
	var seen http.Header
	if err := json.Unmarshal([]byte(r.body), &seen); err != nil {
		t.Fatalf("app's echo: %v: %s", err, r.body)
	}
	if got := seen.Values("x-set"); len(got) != 1 || got[0] != "by-route" {
		t.Errorf("request x-set at the app = %q, want [by-route]", got)
	}
	if got := strings.Join(seen.Values("x-add"), ","); got != "by-client,by-route" {
		t.Errorf("request x-add at the app = %q, want by-client,by-route", got)
	}
	if got := seen.Values("x-remove"); len(got) != 0 {
		t.Errorf("request x-remove reached the app: %q", got)
	}
	if got := r.header.Values("x-resp-set"); len(got) != 1 || got[0] != "by-route" {
		t.Errorf("response x-resp-set = %q, want [by-route]", got)
	}
	if got := strings.Join(r.header.Values("x-resp-add"), ","); got != "from-app,by-route" {
		t.Errorf("response x-resp-add = %q, want from-app,by-route", got)
	}
	if got := r.header.Values("x-resp-remove"); len(got) != 0 {
		t.Errorf("response x-resp-remove reached the client: %q", got)
	}
}

// TestTrafficConfigChanges: Route changes applied while requests are in
// flight break none of them; and a Route that names an unknown service or
// an undefined subset, or whose weights are all 0, is rejected by
// `weft apply` with the field's path.
func TestTrafficConfigChanges(t *testing.T) {
	cp := startMeshControl(t)
	startWorkloads(t, cp, "catalog", []string{"v1", "v2"}, func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				time.Sleep(1500 * time.Millisecond)
			}
			w.Header().Set("x-backend", name)
			io.WriteString(w, name)
		})
	})
	client := startClient(t, cp, "catalog")
	waitClusterSize(t, client, "outbound|catalog.default", 2)
	applyConfig(t, cp, subsetsPolicy("catalog", "v1", "v2")+"---\n"+splitRoute(false, 1, 1), client)

	t.Run("in-flight requests survive changes", func(t *testing.T) {
		url := "http://" + client.upstreams["catalog"]
		slow := make(chan *tally)
		go func() { slow <- fire(20, 20, func(int) result { return doGet(url + "/slow") }) }()
		fast := make(chan *tally)
		go func() { fast <- paced(100, 2500*time.Millisecond, 8, func(int) result { return doGet(url + "/fast") }) }()
		time.Sleep(300 * time.Millisecond)
		for i, w := range [][2]int{{1, 0}, {0, 1}, {3, 1}, {1, 3}, {1, 1}} {
			m := cp.mark(t, client)
			cp.apply(t, splitRoute(i%2 == 0, w[0], w[1]))
			if msg := settle(t, cp, m); msg != "" {
				t.Fatalf("change %d NACKed: %s", i, msg)
			}
		}
		if ta := <-slow; ta.failed() > 0 || ta.total != 20 {
			t.Errorf("slow requests in flight during the changes: %s", ta)
		}
		if ta := <-fast; ta.failed() > 0 {
			t.Errorf("requests during the changes: %s", ta)
		}
	})

	t.Run("invalid routes rejected", func(t *testing.T) {
		cases := []struct {
			name, rules string
			want        []string
		}{
			{"unknown service", "  - backends: [{service: nosuch}]\n", []string{"spec.rules[0].backends[0].service", "nosuch"}},
			{"undefined subset", "  - backends: [{subset: v9}]\n", []string{"spec.rules[0].backends[0].subset", "v9"}},
			{"weights sum to 0", "  - backends: [{subset: v1, weight: 0}, {subset: v2, weight: 0}]\n", []string{"spec.rules[0].backends", "0"}},
		}
		for _, c := range cases {
			doc := "apiVersion: weft.dev/v1alpha1\nkind: Route\nmetadata: {name: catalog}\nspec:\n  service: catalog\n  rules:\n" + c.rules
			file := filepath.Join(t.TempDir(), "route.yaml")
			os.WriteFile(file, []byte(doc), 0o644)
			out, err := exec.Command(weftBin, "apply", "-f", file, "--config", filepath.Join(cp.dataDir, "config")).CombinedOutput()
			if err == nil {
				t.Errorf("%s: apply succeeded:\n%s", c.name, out)
				continue
			}
			t.Logf("%s: %s", c.name, strings.TrimSpace(string(out)))
			for _, w := range append(c.want, "Route default/catalog") {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s: output lacks %q:\n%s", c.name, w, out)
				}
			}
		}
		// The Route in force is still the last good one: both subsets answer.
		ta := fire(100, 4, func(int) result { return doGet("http://" + client.upstreams["catalog"] + "/") })
		if ta.failed() > 0 || ta.backends["catalog-v1"] == 0 || ta.backends["catalog-v2"] == 0 {
			t.Fatalf("after the rejected applies: %s", ta)
		}
	})
}
