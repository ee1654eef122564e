package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// TestTrafficTimeouts: a rule's timeout turns a slow upstream into a 504
// close to the limit; a per-try timeout gives up on a slow try and retries;
// a gRPC client's deadline reaches the app.
func TestTrafficTimeouts(t *testing.T) {
	cp := startMeshControl(t)
	cp.apply(t, `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: greeter}
spec:
  ports: [{port: 9000, protocol: grpc}]
`)
	var tries sync.Map // request id -> *atomic.Int32
	startWorkloads(t, cp, "slow", []string{"v1"}, func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/slow":
				select {
				case <-time.After(5 * time.Second):
				case <-r.Context().Done():
				}
			case "/try":
				// The first try of each request hangs; the next ones answer.
				n, _ := tries.LoadOrStore(r.URL.Query().Get("id"), new(atomic.Int32))
				if n.(*atomic.Int32).Add(1) == 1 {
					select {
					case <-time.After(10 * time.Second):
					case <-r.Context().Done():
					}
					return
				}
			}
			w.Header().Set("x-backend", name)
			io.WriteString(w, name)
		})
	})

	// The gRPC app records the deadline of each call it receives.
	gip := nextIP()
	gl, err := net.Listen("tcp", gip+":0")
	if err != nil {
		t.Fatal(err)
	}
	deadlines := make(chan time.Duration, 10)
	gs := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if d, ok := ctx.Deadline(); ok {
			deadlines <- time.Until(d)
		} else {
			deadlines <- 0
		}
		return h(ctx, req)
	}))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)
	startMeshSidecar(t, cp, sidecarOpts{service: "greeter", app: gl.Addr().String(), ip: gip}).waitReady(t)

	client := startClient(t, cp, "slow", "greeter")
	waitClusterSize(t, client, "outbound|slow.default", 1)
	waitClusterSize(t, client, "outbound|greeter.default", 1)
	applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: slow}
spec:
  service: slow
  rules:
  - match: [{path: {exact: /slow}}]
    backends: [{}]
    timeout: 500ms
---
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: greeter}
spec:
  service: greeter
  rules:
  - backends: [{}]
    timeout: 30s
`, client)
	base := "http://" + client.upstreams["slow"]

	t.Run("route timeout", func(t *testing.T) {
		for range 3 {
			r := doGet(base + "/slow")
			if r.err != nil || r.code != http.StatusGatewayTimeout {
				t.Fatalf("got %d %v %q, want 504", r.code, r.err, r.body)
			}
			// Close to the limit: not before it, and long before the app's 5s answer.
			if r.elapsed < 500*time.Millisecond || r.elapsed > 2*time.Second {
				t.Fatalf("504 after %s, want close to the 500ms timeout", r.elapsed)
			}
		}
	})

	t.Run("per-try timeout", func(t *testing.T) {
		applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: slow}
spec:
  service: slow
  rules:
  - match: [{path: {exact: /slow}}]
    backends: [{}]
    timeout: 500ms
  - match: [{path: {exact: /try}}]
    backends: [{}]
    timeout: 3s
    retries: {attempts: 2, perTryTimeout: 300ms, retryOn: [gateway-error, reset, connect-failure], backoff: {baseInterval: 5ms}}
`, client)
		for i := range 5 {
			r := doGet(fmt.Sprintf("%s/try?id=%d", base, i))
			if r.err != nil || r.code != 200 {
				t.Fatalf("request %d: got %d %v %q: the hung first try was not cut by perTryTimeout and retried", i, r.code, r.err, r.body)
			}
			n, _ := tries.Load(fmt.Sprint(i))
			if got := n.(*atomic.Int32).Load(); got != 2 {
				t.Fatalf("request %d: the app saw %d tries, want 2", i, got)
			}
		}
	})

	t.Run("grpc deadline propagates", func(t *testing.T) {
		conn, err := grpc.NewClient(client.upstreams["greeter"], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("Check: %v", err)
		}
		got := <-deadlines
		if got < time.Second || got > 2*time.Second {
			t.Fatalf("the app saw a deadline %s away, want the client's 2s deadline (grpc-timeout) less the transit", got)
		}
	})
}

// deck fails d.fails of every ten calls, in a random order: a backend
// failing 30% of the time at random, whose runs of failures are bounded.
// (With independent 30% draws, 0.3⁴ = 0.81% of requests would fail all four
// tries, too close to the 1% the test allows to give a stable verdict.)
type deck struct {
	mu    sync.Mutex
	cards []bool
	fails int
}

func (d *deck) fail() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.cards) == 0 {
		d.cards = make([]bool, 10)
		for i := range d.fails {
			d.cards[i] = true
		}
		rand.Shuffle(len(d.cards), func(i, j int) { d.cards[i], d.cards[j] = d.cards[j], d.cards[i] })
	}
	f := d.cards[0]
	d.cards = d.cards[1:]
	return f
}

// TestTrafficRetries: retries hide a flaky backend; the retry budget caps
// the retries sent to a backend that always fails; a POST is retried only
// when the rule says retryNonIdempotent.
func TestTrafficRetries(t *testing.T) {
	cp := startMeshControl(t)
	var hits sync.Map // path -> *atomic.Int64
	count := func(path string) *atomic.Int64 {
		n, _ := hits.LoadOrStore(path, new(atomic.Int64))
		return n.(*atomic.Int64)
	}
	flaky := &deck{fails: 3}
	startWorkloads(t, cp, "flaky", []string{"v1"}, func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			count(r.Method + " " + r.URL.Path).Add(1)
			switch r.URL.Path {
			case "/flaky":
				if flaky.fail() {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
			case "/down":
				time.Sleep(50 * time.Millisecond)
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			default:
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("x-backend", name)
			io.WriteString(w, name)
		})
	})
	client := startClient(t, cp, "flaky")
	waitClusterSize(t, client, "outbound|flaky.default", 1)
	applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: flaky}
spec:
  service: flaky
  rules:
  - match: [{path: {exact: /flaky}}, {path: {exact: /down}}, {path: {exact: /idem}}]
    backends: [{}]
    retries: {attempts: 3, retryOn: [5xx], backoff: {baseInterval: 1ms, maxInterval: 5ms}}
  - match: [{path: {exact: /nonidem}}]
    backends: [{}]
    retries: {attempts: 3, retryOn: [5xx], retryNonIdempotent: true, backoff: {baseInterval: 1ms, maxInterval: 5ms}}
`, client)
	base := "http://" + client.upstreams["flaky"]

	t.Run("30% failing backend", func(t *testing.T) {
		// One request at a time, so that each request's tries are
		// consecutive calls of the app, 3 in every 10 of which fail.
		const n = 1000
		ta := fire(n, 1, func(int) result { return doGet(base + "/flaky") })
		tries := count("GET /flaky").Load()
		t.Logf("%s; the app saw %d tries", ta, tries)
		if ta.ok < n*99/100 {
			t.Fatalf("%d of %d succeeded, want at least 99%%: %s", ta.ok, n, ta)
		}
		if tries < n*12/10 {
			t.Fatalf("the app saw %d tries for %d requests: too few retries for a 30%% failure rate", tries, n)
		}
	})

	t.Run("budget caps retries to a failing backend", func(t *testing.T) {
		// 20 requests in flight all the time, each try failing after 50ms:
		// the budget (20% of active requests, at least 3) allows about 4
		// retries in flight, where retrying every failure 3 times would
		// send 3 retries per request.
		const conc = 20
		ta := fire(400, conc, func(int) result { return doGet(base + "/down") })
		sent := count("GET /down").Load()
		retries := sent - int64(ta.total)
		t.Logf("%d requests, %d tries at the app, %d retries", ta.total, sent, retries)
		if ta.ok > 0 {
			t.Fatalf("a request to an always-failing backend succeeded: %s", ta)
		}
		if retries <= 0 {
			t.Fatalf("no retries were sent (%d tries for %d requests)", sent, ta.total)
		}
		// Retries in flight ≤ max(20% of ~24 active, 3) ≈ 5 of the ~24
		// tries in flight: about a quarter of the requests' count; 35%
		// leaves slack. Retrying every failure would make 300%.
		if limit := int64(ta.total) * 35 / 100; retries > limit {
			t.Fatalf("%d retries for %d requests: over the budget (≤ %d)", retries, ta.total, limit)
		}
	})

	t.Run("POST not retried unless retryNonIdempotent", func(t *testing.T) {
		post := func(path string) result {
			req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader("order"))
			return do(req)
		}
		for range 10 {
			if r := post("/idem"); r.code != http.StatusServiceUnavailable {
				t.Fatalf("POST /idem: %d %v", r.code, r.err)
			}
			if r := doGet(base + "/idem"); r.code != http.StatusServiceUnavailable {
				t.Fatalf("GET /idem: %d %v", r.code, r.err)
			}
			if r := post("/nonidem"); r.code != http.StatusServiceUnavailable {
				t.Fatalf("POST /nonidem: %d %v", r.code, r.err)
			}
		}
		if got := count("POST /idem").Load(); got != 10 {
			t.Errorf("10 POSTs reached the app as %d tries, want 10: a POST was retried", got)
		}
		if got := count("GET /idem").Load(); got != 40 {
			t.Errorf("10 GETs reached the app as %d tries, want 40 (3 retries each)", got)
		}
		if got := count("POST /nonidem").Load(); got != 40 {
			t.Errorf("10 POSTs with retryNonIdempotent reached the app as %d tries, want 40", got)
		}
	})
}

// TestTrafficCircuitBreaking: past maxRequests and maxPendingRequests,
// requests get a fast 503 with x-weft-overloaded: true, and never hang.
func TestTrafficCircuitBreaking(t *testing.T) {
	cp := startMeshControl(t)
	// Each app holds requests until its channel is closed.
	release := map[string]chan struct{}{"busy-v1": make(chan struct{}), "queue-v1": make(chan struct{})}
	held := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/warm" {
				select {
				case <-release[name]:
				case <-time.After(20 * time.Second):
				}
			}
			w.Header().Set("x-backend", name)
			io.WriteString(w, name)
		})
	}
	startWorkloads(t, cp, "busy", []string{"v1"}, held)
	startWorkloads(t, cp, "queue", []string{"v1"}, held)
	client := startClient(t, cp, "busy", "queue")
	waitClusterSize(t, client, "outbound|busy.default", 1)
	waitClusterSize(t, client, "outbound|queue.default", 1)
	applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: busy}
spec:
  connectionLimits: {maxRequests: 2}
---
apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: queue}
spec:
  connectionLimits: {maxPendingRequests: 1}
`, client)

	// burst sends n requests at once; while the app holds them, it expects
	// at least minRefused fast overloaded 503s, then releases the app and
	// returns how many were admitted and refused.
	burst := func(t *testing.T, url string, release chan struct{}, n, minRefused int) (admitted, refused int) {
		t.Helper()
		results := make(chan result, n)
		for range n {
			go func() { results <- doGet(url) }()
		}
		overloaded := func(r result) bool {
			return r.err == nil && r.code == http.StatusServiceUnavailable && r.header.Get("x-weft-overloaded") == "true"
		}
		timeout := time.After(10 * time.Second)
		for refused < minRefused {
			select {
			case r := <-results:
				if !overloaded(r) {
					t.Fatalf("while the app holds the admitted requests: %d %v x-weft-overloaded=%q %q",
						r.code, r.err, r.header.Get("x-weft-overloaded"), r.body)
				}
				// Fast: refused at once, not after waiting for the held requests.
				if r.elapsed > 2*time.Second {
					t.Errorf("an overflowing request took %s to be refused", r.elapsed)
				}
				refused++
			case <-timeout:
				t.Fatalf("only %d of %d requests refused within 10s: the overflow hangs", refused, n)
			}
		}
		time.Sleep(200 * time.Millisecond) // let any other refusal arrive before the release
		close(release)
		for range n - refused {
			r := <-results
			switch {
			case r.err == nil && r.code == 200:
				admitted++
			case overloaded(r):
				refused++
			default:
				t.Errorf("after release: %d %v %q", r.code, r.err, r.body)
			}
		}
		return admitted, refused
	}

	t.Run("maxRequests", func(t *testing.T) {
		url := "http://" + client.upstreams["busy"] + "/"
		// Open the pooled connection first, so that no request waits for
		// one: this is about requests in flight.
		if r := doGet(url + "warm"); r.code != 200 {
			t.Fatalf("warm-up: %d %v", r.code, r.err)
		}
		admitted, refused := burst(t, url, release["busy-v1"], 12, 10)
		t.Logf("%d admitted, %d refused", admitted, refused)
		if admitted != 2 {
			t.Fatalf("%d requests admitted, %d refused; want 2 admitted (maxRequests 2)", admitted, refused)
		}
		if r := doGet(url); r.code != 200 {
			t.Fatalf("after the burst: %d %v", r.code, r.err)
		}
	})

	t.Run("maxPendingRequests", func(t *testing.T) {
		// No connection is open yet: the burst waits for the first one,
		// and all but maxPendingRequests of the waiting requests overflow.
		url := "http://" + client.upstreams["queue"] + "/"
		admitted, refused := burst(t, url, release["queue-v1"], 12, 1)
		t.Logf("%d admitted, %d refused", admitted, refused)
		if admitted < 1 {
			t.Fatalf("no request admitted (%d refused)", refused)
		}
		if r := doGet(url); r.code != 200 {
			t.Fatalf("after the burst: %d %v", r.code, r.err)
		}
	})
}

// TestTrafficOutlierDetection: with retries and outlier detection, killing
// one instance's sidecar and then another instance's app under 500
// requests per second loses fewer than 0.1% of the requests.
func TestTrafficOutlierDetection(t *testing.T) {
	cp := startMeshControl(t)
	ws := startWorkloads(t, cp, "od", []string{"a", "b", "c"}, nil)
	client := startClient(t, cp, "od")
	waitClusterSize(t, client, "outbound|od.default", 3)
	applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: od}
spec:
  outlierDetection:
    consecutive5xx: 3
    consecutiveGatewayErrors: 2
    consecutiveLocalOriginFailures: 2
    interval: 500ms
    baseEjectionTime: 30s
    maxEjectionPercent: 100
---
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: od}
spec:
  service: od
  rules:
  - backends: [{}]
    timeout: 5s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: [5xx, reset, connect-failure], backoff: {baseInterval: 5ms, maxInterval: 50ms}}
`, client)
	url := "http://" + client.upstreams["od"] + "/"

	done := make(chan *tally)
	go func() { done <- paced(500, 10*time.Second, 32, func(int) result { return doGet(url) }) }()
	time.Sleep(3 * time.Second)
	ws[0].side.signal(syscall.SIGKILL) // instance a: its sidecar dies
	time.Sleep(3 * time.Second)
	ws[1].app.srv.Close() // instance b: its app dies, its sidecar stays
	ta := <-done
	t.Logf("%s", ta)
	if ta.total < 4500 {
		t.Fatalf("only %d requests sent in 10s, want about 5000", ta.total)
	}
	if ta.failed()*1000 > ta.total {
		t.Fatalf("%d of %d requests failed, want under 0.1%%: %s", ta.failed(), ta.total, ta)
	}
	if ta.backends["od-c"] == 0 {
		t.Fatalf("the surviving instance answered nothing: %s", ta)
	}
	// Instance b's sidecar is alive, so it stays in discovery: outlier
	// detection, not the registry, took it out.
	lines := endpointLines(client.adminGet(t, "/clusters"), "outbound|od.default")
	if b, ok := lines[ws[1].side.inbound]; !ok || !strings.Contains(b, "failed_outlier_check") {
		t.Fatalf("instance b (app dead, sidecar alive) is not ejected: %q", b)
	}
}

// TestTrafficHealthChecks: an instance that fails its HTTP or gRPC health
// check stops receiving traffic, and receives it again once healthy.
func TestTrafficHealthChecks(t *testing.T) {
	cp := startMeshControl(t)
	cp.apply(t, `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: ghc}
spec:
  ports: [{port: 9000, protocol: grpc}]
`)
	healthy := map[string]*atomic.Bool{}
	probes := map[string]*atomic.Int64{} // health probes that reached each app
	for _, n := range []string{"hc-a", "hc-b"} {
		healthy[n], probes[n] = new(atomic.Bool), new(atomic.Int64)
		healthy[n].Store(true)
	}
	startWorkloads(t, cp, "hc", []string{"a", "b"}, func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				probes[name].Add(1)
				if !healthy[name].Load() {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
				return
			}
			w.Header().Set("x-backend", name)
			io.WriteString(w, name)
		})
	})

	// Two gRPC instances, each with its own health server and its name in a header.
	gservers := map[string]*health.Server{}
	for _, n := range []string{"ghc-a", "ghc-b"} {
		ip := nextIP()
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		probes[n] = new(atomic.Int64)
		gs := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if r, ok := req.(*healthpb.HealthCheckRequest); ok && r.GetService() == "" {
				probes[n].Add(1) // the proxy's probe; the test's calls ask about "app"
			}
			grpc.SetHeader(ctx, metadata.Pairs("x-backend", n))
			return h(ctx, req)
		}))
		hs := health.NewServer()
		hs.SetServingStatus("app", healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(gs, hs)
		gservers[n] = hs
		go gs.Serve(ln)
		t.Cleanup(gs.Stop)
		startMeshSidecar(t, cp, sidecarOpts{service: "ghc", app: ln.Addr().String(), ip: ip}).waitReady(t)
	}

	client := startClient(t, cp, "hc", "ghc")
	waitClusterSize(t, client, "outbound|hc.default", 2)
	waitClusterSize(t, client, "outbound|ghc.default", 2)
	gconn, err := grpc.NewClient(client.upstreams["ghc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer gconn.Close()
	hc := healthpb.NewHealthClient(gconn)

	// Traffic flows from before the health checks are configured to the
	// end: a check is about taking an instance out of live traffic.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	defer func() { close(stop); bg.Wait() }()
	for _, send := range []func(){
		func() { doGet("http://" + client.upstreams["hc"] + "/bg") },
		func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "app"})
		},
	} {
		bg.Add(1)
		go func() {
			defer bg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				send()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: hc}
spec:
  healthCheck:
    http: {path: /healthz}
    interval: 1s
    timeout: 500ms
    unhealthyThreshold: 2
    healthyThreshold: 1
---
apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: ghc}
spec:
  healthCheck:
    grpc: {}
    interval: 1s
    timeout: 500ms
    unhealthyThreshold: 2
    healthyThreshold: 1
`, client)

	// only waits until 40 requests in a row go to want (or, with want "",
	// spread over both instances).
	only := func(t *testing.T, what, want string, send func() (string, error)) {
		t.Helper()
		start := time.Now()
		defer func() {
			t.Logf("%s: after %s; probes so far %s", what, time.Since(start).Round(time.Millisecond), probeCounts(probes))
		}()
		eventually(t, 20*time.Second, what, func() error {
			got := map[string]int{}
			for range 40 {
				b, err := send()
				if err != nil {
					return fmt.Errorf("%v; endpoints:\n%s", err, healthLines(client.adminGet(t, "/clusters")))
				}
				got[b]++
			}
			if (want != "" && got[want] != 40) || (want == "" && len(got) < 2) {
				return fmt.Errorf("answers %v; probes seen by the apps %s; endpoints:\n%s", got,
					probeCounts(probes), healthLines(client.adminGet(t, "/clusters")))
			}
			return nil
		})
	}

	t.Run("http", func(t *testing.T) {
		url := "http://" + client.upstreams["hc"] + "/"
		send := func() (string, error) {
			r := doGet(url)
			if r.err != nil || r.code != 200 {
				return "", fmt.Errorf("%d %v %s", r.code, r.err, r.body)
			}
			return r.backend, nil
		}
		only(t, "both instances serve", "", send)
		healthy["hc-a"].Store(false)
		only(t, "traffic leaves the instance failing its check", "hc-b", send)
		healthy["hc-a"].Store(true)
		only(t, "traffic returns to the instance once healthy", "", send)
	})

	t.Run("grpc", func(t *testing.T) {
		send := func() (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var md metadata.MD
			if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "app"}, grpc.Header(&md)); err != nil {
				return "", err
			}
			return strings.Join(md.Get("x-backend"), ","), nil
		}
		only(t, "both instances serve", "", send)
		gservers["ghc-a"].SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		only(t, "traffic leaves the instance failing its check", "ghc-b", send)
		gservers["ghc-a"].SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		only(t, "traffic returns to the instance once healthy", "", send)
	})
}

// healthLines keeps the health lines of /clusters.
func healthLines(clusters string) string {
	var out []string
	for _, l := range strings.Split(clusters, "\n") {
		if strings.Contains(l, "health") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func probeCounts(m map[string]*atomic.Int64) string {
	c := map[string]int{}
	for k, v := range m {
		c[k] = int(v.Load())
	}
	return countsOf(c)
}
