package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Rate limits against real processes: local token buckets in the
// destination's proxies, per calling service; a global limit that the
// control plane counts for every instance of the destination together; and
// what the global limit does when the control plane is gone.

// TestRateLimitLocal: a local limit refuses the requests beyond its bucket
// with 429 and retry-after, each calling service has its own bucket, and
// requests the limit does not match are not counted.
func TestRateLimitLocal(t *testing.T) {
	cp := startMeshControl(t)
	catalog := startWorkloads(t, cp, "catalog", []string{"v1"}, nil)[0]
	web := startMeshSidecar(t, cp, sidecarOpts{service: "web", upstreams: []string{"catalog"}}).waitReady(t)
	admin := startMeshSidecar(t, cp, sidecarOpts{service: "admin", upstreams: []string{"catalog"}}).waitReady(t)
	for _, c := range []*sidecar{web, admin} {
		eventually(t, 15*time.Second, c.service+" reaches catalog", func() error {
			return httpGetOK("http://" + c.upstreams["catalog"] + "/")
		})
	}

	// Searches: a burst of 3 for each caller, then one a minute. Checkouts,
	// the Route's rule: one a minute for everyone.
	applyLimits(t, cp, `
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
  - name: checkout
    match:
    - path: {prefix: /checkout}
      method: POST
    backends: [{}]
---
apiVersion: weft.dev/v1alpha1
kind: RateLimit
metadata: {name: catalog}
spec:
  limits:
  - name: search
    match:
    - path: {prefix: /search}
    perSource: true
    local: {requests: 1, unit: minute, burst: 3}
  - name: checkout
    routeRule: checkout
    local: {requests: 1, unit: minute}
`, catalog.side)

	for _, c := range []*sidecar{web, admin} {
		var codes []int
		var refused result
		for range 5 {
			r := doGet("http://" + c.upstreams["catalog"] + "/search?q=x")
			if r.err != nil {
				t.Fatalf("%s: %v", c.service, r.err)
			}
			codes = append(codes, r.code)
			if r.code == http.StatusTooManyRequests {
				refused = r
			}
		}
		if fmt.Sprint(codes) != "[200 200 200 429 429]" {
			t.Fatalf("%s's 5 searches: %v, want its own burst of 3 then 429s", c.service, codes)
		}
		secs, err := strconv.Atoi(refused.header.Get("Retry-After"))
		if err != nil || secs < 1 || secs > 60 {
			t.Errorf("%s: retry-after %q, want the seconds until the next token (at most 60)", c.service, refused.header.Get("Retry-After"))
		}
		if got := refused.header.Get("X-Ratelimit-Limit"); got != "3, 3;w=60" {
			t.Errorf("%s: x-ratelimit-limit %q, want \"3, 3;w=60\"", c.service, got)
		}
		if got := refused.header.Get("X-Weft-Error"); got != "local_rate_limited" {
			t.Errorf("%s: x-weft-error %q, want local_rate_limited", c.service, got)
		}
	}
	// The checkout limit counts what the Route's rule matches, whoever sends it.
	post := func(c *sidecar) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+c.upstreams["catalog"]+"/checkout/cart", strings.NewReader("{}"))
		r := do(req)
		if r.err != nil {
			t.Fatalf("%s: %v", c.service, r.err)
		}
		return r.code
	}
	if codes := fmt.Sprint(post(web), post(admin)); codes != "200 429" {
		t.Errorf("two checkouts from two callers: %s, want 200 429 (one a minute in all)", codes)
	}
	if r := doGet("http://" + web.upstreams["catalog"] + "/checkout/cart"); r.code != http.StatusOK {
		t.Errorf("GET /checkout/cart, which the rule does not match: %d", r.code)
	}
	// Other paths are not limited.
	ta := fire(20, 4, func(int) result { return doGet("http://" + web.upstreams["catalog"] + "/browse") })
	if ta.ok != 20 {
		t.Fatalf("requests no limit matches: %s", ta)
	}
}

// TestRateLimitGlobal: three instances of catalog under load together let
// through what the global limit allows, within 10%, and each serves part of
// it: the count is shared, not per instance.
func TestRateLimitGlobal(t *testing.T) {
	const limit = 40 // per second, for all instances together
	cp := startMeshControl(t)
	instances := startWorkloads(t, cp, "catalog", []string{"v1", "v2", "v3"}, nil)
	client := startClient(t, cp, "catalog")
	waitClusterSize(t, client, "outbound|catalog.default", 3)
	applyLimits(t, cp, fmt.Sprintf(`
apiVersion: weft.dev/v1alpha1
kind: RateLimit
metadata: {name: catalog}
spec:
  failureMode: closed
  timeout: 500ms
  limits:
  - name: all
    global: {requests: %d, unit: second}
`, limit), instances[0].side, instances[1].side, instances[2].side)

	// Well over the limit for a little more than five seconds.
	type outcome struct {
		at      time.Time
		code    int
		backend string
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		errs     []string
	)
	url := "http://" + client.upstreams["catalog"] + "/items"
	ta := paced(300, 5500*time.Millisecond, 32, func(int) result {
		r := doGet(url)
		mu.Lock()
		defer mu.Unlock()
		if r.err != nil {
			errs = append(errs, r.err.Error())
		} else {
			outcomes = append(outcomes, outcome{at: time.Now(), code: r.code, backend: r.backend})
		}
		return r
	})
	if len(errs) > 0 {
		t.Fatalf("%d requests failed: %q", len(errs), errs[:min(len(errs), 5)])
	}

	// Count by the second each answer came back in, over the whole seconds
	// inside the run: the control plane counts in windows aligned to the
	// second.
	sort.Slice(outcomes, func(i, j int) bool { return outcomes[i].at.Before(outcomes[j].at) })
	first := outcomes[0].at.Truncate(time.Second).Add(time.Second)
	last := outcomes[len(outcomes)-1].at.Truncate(time.Second)
	windows := int(last.Sub(first) / time.Second)
	if windows < 3 {
		t.Fatalf("only %d whole seconds of load: %s", windows, ta)
	}
	ok, refused := 0, 0
	byBackend := map[string]int{}
	for _, o := range outcomes {
		if o.at.Before(first) || !o.at.Before(last) {
			continue
		}
		switch o.code {
		case http.StatusOK:
			ok++
			byBackend[o.backend]++
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("unexpected status %d: %s", o.code, ta)
		}
	}
	want := limit * windows
	t.Logf("%d whole seconds: %d ok (limit %d), %d refused; by instance %s", windows, ok, want, refused, countsOf(byBackend))
	if diff := float64(ok-want) / float64(want); diff > 0.10 || diff < -0.10 {
		t.Errorf("%d requests let through in %d seconds, want %d (the global limit) within 10%%", ok, windows, want)
	}
	if refused < want {
		t.Errorf("only %d refused beside %d let through: the load did not exceed the limit enough to test it", refused, ok)
	}
	for _, w := range instances {
		if byBackend[w.name] == 0 {
			t.Errorf("instance %s served nothing: %s", w.name, countsOf(byBackend))
		}
	}
}

// TestRateLimitControlPlaneKilled: with the control plane SIGKILLed, a
// global limit that fails open lets traffic through and one that fails
// closed refuses it, saying why.
func TestRateLimitControlPlaneKilled(t *testing.T) {
	cp := startMeshControl(t)
	open := startWorkloads(t, cp, "orders", []string{"v1"}, nil)[0]
	closed := startWorkloads(t, cp, "payments", []string{"v1"}, nil)[0]
	client := startClient(t, cp, "orders", "payments")
	applyLimits(t, cp, `
apiVersion: weft.dev/v1alpha1
kind: RateLimit
metadata: {name: orders}
spec:
  failureMode: open
  limits:
  - name: all
    global: {requests: 1000, unit: second}
---
apiVersion: weft.dev/v1alpha1
kind: RateLimit
metadata: {name: payments}
spec:
  failureMode: closed
  limits:
  - name: all
    global: {requests: 1000, unit: second}
`, open.side, closed.side)
	for _, svc := range []string{"orders", "payments"} {
		eventually(t, 15*time.Second, svc+" answers through its global limit", func() error {
			return httpGetOK("http://" + client.upstreams[svc] + "/")
		})
	}

	cp.kill()

	ordersURL, paymentsURL := "http://"+client.upstreams["orders"]+"/", "http://"+client.upstreams["payments"]+"/"
	ta := fire(30, 3, func(int) result { return doGet(ordersURL) })
	if ta.ok != 30 {
		t.Errorf("failing open without the control plane: %s, want every request through", ta)
	}
	tb := fire(30, 3, func(int) result { return doGet(paymentsURL) })
	if tb.codes[http.StatusServiceUnavailable] != 30 {
		t.Fatalf("failing closed without the control plane: %s, want 30 × 503", tb)
	}
	r := doGet(paymentsURL)
	if got := r.header.Get("X-Weft-Error"); got != "rate_limit_service_unavailable" || !strings.Contains(r.body, "rate limit service unavailable") {
		t.Errorf("refusal says %q / %q, want rate_limit_service_unavailable", got, r.body)
	}
	// The outage is logged, but not once per request.
	if n := strings.Count(closed.side.output(), "rate limit service unreachable"); n < 1 || n > 3 {
		t.Errorf("payments' proxy logged the outage %d times for 31 requests, want once or so", n)
	}
}

// applyLimits applies RateLimits and waits until each sidecar of the
// limited services has accepted its new inbound listener. (applyConfig
// waits for every type, and a sidecar without upstreams is sent routes and
// endpoints it never asks for, so never acknowledges.) A NACK fails the
// test.
func applyLimits(t *testing.T, cp *controlPlane, doc string, on ...*sidecar) {
	t.Helper()
	const listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	m := cp.mark(t, on...)
	cp.apply(t, doc)
	eventually(t, 15*time.Second, "the limited services' proxies accept their listeners", func() error {
		seen := 0
		for _, n := range cp.nodes(t) {
			before, ok := m.versions[n.ID]
			if !ok {
				continue
			}
			seen++
			if n.LastNACK != nil && n.LastNACK.At.After(m.since) {
				t.Fatalf("%s rejected the config (NACK of %s): %s", n.ID, rejectedField(n.LastNACK.Message), n.LastNACK.Message)
			}
			v := n.Versions[listenerType]
			switch {
			case v == before[listenerType]:
				return fmt.Errorf("%s: no new listener yet", n.ID)
			case n.Acked[listenerType] != v:
				return fmt.Errorf("%s: listener %s not acknowledged yet", n.ID, v)
			}
		}
		if seen != len(m.versions) {
			return fmt.Errorf("%d of %d proxies connected", seen, len(m.versions))
		}
		return nil
	})
}
