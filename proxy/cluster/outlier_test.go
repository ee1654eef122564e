package cluster

import (
	"github.com/weftmesh/weft/proxy/lb"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// The request path's counters: which outcomes count towards which
// detector, and what resets them.
func TestOutlierCounting(t *testing.T) {
	tests := []struct {
		name                     string
		split                    bool
		outcomes                 []int // 0 is a local-origin failure
		cons5xx, consGw, consLoc uint32
	}{
		{name: "5xx", outcomes: []int{500, 500}, cons5xx: 2},
		{name: "gateway", outcomes: []int{502, 503, 504}, cons5xx: 3, consGw: 3},
		{name: "success resets", outcomes: []int{503, 503, 200}, cons5xx: 0},
		{name: "4xx is success", outcomes: []int{500, 404}, cons5xx: 0},
		{name: "500 breaks a gateway run", outcomes: []int{503, 500}, cons5xx: 2, consGw: 0},
		{name: "local not split is a 503", outcomes: []int{0, 0}, cons5xx: 2, consGw: 2},
		{name: "local split", split: true, outcomes: []int{500, 0, 0}, cons5xx: 1, consLoc: 2},
		{name: "split: any answer resets local", split: true, outcomes: []int{0, 0, 503}, cons5xx: 1, consGw: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultOutlierDetection()
			cfg.Consecutive5xx, cfg.ConsecutiveGatewayFailure, cfg.ConsecutiveLocalOriginFailure = 100, 100, 100
			cfg.SplitExternalLocalOriginErrors = tt.split
			d := newDetector(cfg, nil)
			h := &hostStats{}
			for _, o := range tt.outcomes {
				d.observe(h, o)
			}
			o := &h.outlier
			if o.cons5xx.Load() != tt.cons5xx || o.consGateway.Load() != tt.consGw || o.consLocal.Load() != tt.consLoc {
				t.Fatalf("5xx %d gateway %d local %d, want %d %d %d", o.cons5xx.Load(), o.consGateway.Load(),
					o.consLocal.Load(), tt.cons5xx, tt.consGw, tt.consLoc)
			}
		})
	}
}

func outlierCluster(t *testing.T, cfg OutlierDetection, addrs ...string) *Cluster {
	t.Helper()
	pool := NewPool(Settings{Name: "app", Outlier: &cfg})
	t.Cleanup(pool.Close)
	var specs []EndpointSpec
	for _, a := range addrs {
		specs = append(specs, EndpointSpec{Address: a, Healthy: true})
	}
	c := New("app", pool, roundRobin(), specs)
	pool.Retain(c.Endpoints())
	return c
}

// Ejection limits: max_ejection_percent (one ejection always allowed),
// enforcing percentage, and the ejection time's growth and cap.
func TestOutlierEject(t *testing.T) {
	cfg := DefaultOutlierDetection()
	cfg.Interval = time.Hour // reviews are driven by hand
	cfg.MaxEjectionPercent = 10
	cfg.BaseEjectionTime, cfg.MaxEjectionTime = 10*time.Second, 25*time.Second
	c := outlierCluster(t, cfg, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
	d := c.pool.outlier
	now := time.Unix(1000, 0)
	d.now = func() time.Time { return now }
	eps := c.Endpoints()
	if !d.eject(detection{host: eps[0].host, kind: detect5xx}) {
		t.Fatal("first ejection refused: one is always allowed")
	}
	if d.eject(detection{host: eps[1].host, kind: detect5xx}) {
		t.Fatal("second ejection exceeds 10% of 3 endpoints")
	}
	if d.eject(detection{host: eps[0].host, kind: detect5xx}) {
		t.Fatal("an ejected endpoint ejected twice")
	}
	if d.eject(detection{host: eps[2].host, kind: detectGateway}) {
		t.Fatal("gateway failures are not enforced by default")
	}
	c.rebuild()
	for i := 0; i < 30; i++ {
		if ep, _ := c.Pick(lbInfo()); ep == eps[0] {
			t.Fatal("ejected endpoint picked")
		}
	}
	if eps[0].HealthFlags() != "/failed_outlier_check" || eps[1].HealthFlags() != "healthy" {
		t.Fatalf("flags %q %q", eps[0].HealthFlags(), eps[1].HealthFlags())
	}
	// 10 s later the ejection is over; a second one lasts 20 s, a third
	// would last 30 s but is capped at 25 s.
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second} {
		if got := eps[0].host.outlier.until.Sub(now); got != want {
			t.Fatalf("ejection %d lasts %v, want %v", i+1, got, want)
		}
		now = now.Add(want - time.Millisecond)
		if d.review(); !eps[0].Ejected() {
			t.Fatalf("ejection %d over early", i+1)
		}
		now = now.Add(time.Millisecond)
		if d.review(); eps[0].Ejected() {
			t.Fatalf("ejection %d not over after %v", i+1, want)
		}
		if i < 2 && !d.eject(detection{host: eps[0].host, kind: detect5xx}) {
			t.Fatal("re-ejection refused")
		}
	}
}

func lbInfo() lb.PickInfo { return lb.PickInfo{} }

// Real backends, one of which starts failing: it stops receiving traffic
// once it has failed consecutive_5xx times in a row, and receives it again
// after its ejection time, once healthy.
func TestOutlierEjectionWithBackends(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	var badHits atomic.Int64
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer bad.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer good.Close()

	cfg := DefaultOutlierDetection()
	cfg.Consecutive5xx = 3
	cfg.Interval = 20 * time.Millisecond
	cfg.BaseEjectionTime = 300 * time.Millisecond
	cfg.MaxEjectionPercent = 50
	var ejections atomic.Int64
	cfg.OnEject = func() { ejections.Add(1) }
	c := outlierCluster(t, cfg, bad.Listener.Addr().String(), good.Listener.Addr().String())

	send := func() int {
		res, _ := request(t, c)
		return res.StatusCode
	}
	deadline := time.Now().Add(5 * time.Second)
	for ejections.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("never ejected after %d failures", badHits.Load())
		}
		send()
		time.Sleep(time.Millisecond)
	}
	if n := badHits.Load(); n < 3 {
		t.Fatalf("ejected after %d failures, want 3", n)
	}
	failing.Store(false)
	before := badHits.Load()
	for i := 0; i < 50; i++ {
		if code := send(); code != http.StatusOK {
			t.Fatalf("request %d while ejected: %d", i, code)
		}
	}
	if n := badHits.Load() - before; n != 0 {
		t.Fatalf("the ejected endpoint received %d requests", n)
	}
	// It returns after its ejection time.
	deadline = time.Now().Add(5 * time.Second)
	for badHits.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the endpoint never returned")
		}
		send()
		time.Sleep(5 * time.Millisecond)
	}
	if ejections.Load() != 1 {
		t.Fatalf("%d ejections, want 1", ejections.Load())
	}
}

func TestOutlierDetectorStops(t *testing.T) {
	cfg := DefaultOutlierDetection()
	cfg.Interval = time.Millisecond
	pool := NewPool(Settings{Name: "app", Outlier: &cfg})
	c := New("app", pool, roundRobin(), []EndpointSpec{{Address: "10.0.0.1:80", Healthy: true}})
	pool.Retain(c.Endpoints())
	done := make(chan struct{})
	go func() { pool.Close(); pool.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the detector")
	}
}

// A detection made while the detector's queue was full is not lost: the
// next review takes it.
func TestOutlierMissedDetection(t *testing.T) {
	cfg := DefaultOutlierDetection()
	cfg.Interval = time.Hour
	cfg.Consecutive5xx = 2
	cfg.MaxEjectionPercent = 100
	pool := NewPool(Settings{Name: "app", Outlier: &cfg})
	c := New("app", pool, roundRobin(), []EndpointSpec{{Address: "10.0.0.1:80", Healthy: true}, {Address: "10.0.0.2:80", Healthy: true}})
	pool.serving.Store(c) // the detector's goroutine is not started: events queue up
	d := pool.outlier
	for i := 0; i < cap(d.events); i++ {
		d.events <- detection{}
	}
	ep := c.Endpoints()[0]
	d.observe(ep.host, 500)
	d.observe(ep.host, 500)
	if d.review(); !ep.Ejected() {
		t.Fatal("missed detection not taken by the review")
	}
}
