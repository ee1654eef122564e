package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestTrafficFaults: a rule delays a share of requests, aborts a share with
// an HTTP status, and aborts a share of gRPC calls with a gRPC status; the
// shares land within tolerance and aborted requests never reach the app.
func TestTrafficFaults(t *testing.T) {
	cp := startMeshControl(t)
	cp.apply(t, `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: gfault}
spec:
  ports: [{port: 9000, protocol: grpc}]
`)
	ws := startWorkloads(t, cp, "fault", []string{"v1"}, nil)
	gip := nextIP()
	gl, err := net.Listen("tcp", gip+":0")
	if err != nil {
		t.Fatal(err)
	}
	var grpcCalls atomic.Int64
	gs := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		grpcCalls.Add(1)
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)
	startMeshSidecar(t, cp, sidecarOpts{service: "gfault", app: gl.Addr().String(), ip: gip}).waitReady(t)

	client := startClient(t, cp, "fault", "gfault")
	waitClusterSize(t, client, "outbound|fault.default", 1)
	waitClusterSize(t, client, "outbound|gfault.default", 1)
	applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: fault}
spec:
  service: fault
  rules:
  - match: [{path: {exact: /delay}}]
    backends: [{}]
    fault: {delay: {fixed: 300ms, percentage: 50}}
  - match: [{path: {exact: /abort}}]
    backends: [{}]
    fault: {abort: {httpStatus: 418, percentage: 30}}
---
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: gfault}
spec:
  service: gfault
  rules:
  - backends: [{}]
    fault: {abort: {grpcStatus: unavailable, percentage: 40}}
`, client)
	base := "http://" + client.upstreams["fault"]

	t.Run("delay", func(t *testing.T) {
		const n = 600
		ta := fire(n, 60, func(int) result { return doGet(base + "/delay") })
		if ta.failed() > 0 {
			t.Fatalf("failures: %s", ta)
		}
		delayed := 0
		for _, d := range ta.latencies {
			if d >= 300*time.Millisecond {
				delayed++
			}
		}
		// ±7 points is 3.4 standard deviations for 600 requests at 50%.
		if s := float64(delayed) / n; !within(s, 0.5, 0.07) {
			t.Fatalf("%d of %d requests took 300ms or more, want 50%% ± 7", delayed, n)
		}
	})

	t.Run("abort http", func(t *testing.T) {
		const n = 1000
		before := ws[0].app.hits.Load()
		ta := fire(n, 8, func(int) result { return doGet(base + "/abort") })
		aborted := ta.codes[418]
		if ta.errs > 0 || aborted+ta.ok != n {
			t.Fatalf("want only 200 and 418: %s", ta)
		}
		// ±5 points is 3.5 standard deviations for 1000 requests at 30%.
		if s := float64(aborted) / n; !within(s, 0.30, 0.05) {
			t.Fatalf("%d of %d requests aborted, want 30%% ± 5", aborted, n)
		}
		if got := ws[0].app.hits.Load() - before; got != int64(ta.ok) {
			t.Fatalf("the app saw %d requests, want the %d that were not aborted", got, ta.ok)
		}
	})

	t.Run("abort grpc", func(t *testing.T) {
		conn, err := grpc.NewClient(client.upstreams["gfault"], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		hc := healthpb.NewHealthClient(conn)
		const n = 500
		ta := fire(n, 8, func(int) result {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			switch status.Code(err) {
			case codes.OK:
				return result{code: 200}
			case codes.Unavailable:
				return result{code: 14}
			default:
				return result{err: err}
			}
		})
		if ta.errs > 0 || ta.codes[14]+ta.ok != n {
			t.Fatalf("want only OK and Unavailable: %s", ta)
		}
		// ±7 points is 3.2 standard deviations for 500 calls at 40%.
		if s := float64(ta.codes[14]) / n; !within(s, 0.40, 0.07) {
			t.Fatalf("%d of %d calls aborted with Unavailable, want 40%% ± 7", ta.codes[14], n)
		}
		if got := grpcCalls.Load(); got != int64(ta.ok) {
			t.Fatalf("the app saw %d calls, want the %d that were not aborted", got, ta.ok)
		}
	})
}

// TestTrafficMirror: a share of requests is copied to a shadow service whose
// answers are discarded; a slow, failing shadow does not slow or fail the
// caller.
func TestTrafficMirror(t *testing.T) {
	cp := startMeshControl(t)
	startWorkloads(t, cp, "web", []string{"v1"}, nil)
	var shadowHits atomic.Int64
	var shadowSlow atomic.Bool
	startWorkloads(t, cp, "shadow", []string{"v1"}, func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			shadowHits.Add(1)
			io.Copy(io.Discard, r.Body)
			w.Header().Set("x-backend", name)
			if shadowSlow.Load() {
				time.Sleep(time.Second)
				w.WriteHeader(http.StatusInternalServerError)
				io.WriteString(w, "shadow failed")
				return
			}
			io.WriteString(w, "shadow answer")
		})
	})
	client := startClient(t, cp, "web")
	waitClusterSize(t, client, "outbound|web.default", 1)
	applyConfig(t, cp, `apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: web}
spec:
  service: web
  rules:
  - backends: [{}]
    mirror: {service: shadow, percentage: 50}
`, client)
	waitClusterSize(t, client, "outbound|shadow.default", 1)
	url := "http://" + client.upstreams["web"] + "/m"

	t.Run("share copied, answers discarded", func(t *testing.T) {
		const n = 1000
		ta := fire(n, 4, func(int) result { return doGet(url) })
		if ta.failed() > 0 || ta.backends["web-v1"] != n {
			t.Fatalf("the caller saw something other than web's answers: %s", ta)
		}
		// Let the copies still on their way arrive.
		time.Sleep(500 * time.Millisecond)
		// ±5 points is 3.2 standard deviations for 1000 requests at 50%.
		if s := float64(shadowHits.Load()) / n; !within(s, 0.5, 0.05) {
			t.Fatalf("the shadow got %d copies of %d requests, want 50%% ± 5", shadowHits.Load(), n)
		}
	})

	t.Run("slow failing shadow", func(t *testing.T) {
		shadowSlow.Store(true)
		before := shadowHits.Load()
		ta := fire(300, 4, func(int) result { return doGet(url) })
		if ta.failed() > 0 || ta.backends["web-v1"] != 300 {
			t.Fatalf("with a failing shadow the caller saw: %s", ta)
		}
		var slowest time.Duration
		for _, d := range ta.latencies {
			slowest = max(slowest, d)
		}
		// The shadow takes 1s to answer: a caller that waited for it would show it.
		if slowest >= time.Second {
			t.Fatalf("a caller took %s: it waited for the shadow", slowest)
		}
		if shadowHits.Load() == before {
			t.Fatal("no copy reached the slow shadow")
		}
	})
}
