package cluster

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAcquireRetry(t *testing.T) {
	tests := []struct {
		name     string
		limits   *Thresholds
		active   int64 // requests in flight
		admitted int64
	}{
		{name: "default max_retries", admitted: DefaultMaxRetries},
		{name: "max_retries", limits: &Thresholds{MaxRetries: 5}, admitted: 5},
		{name: "no retries", limits: &Thresholds{MaxRequests: 10}, admitted: 0},
		{name: "budget floor", limits: &Thresholds{MaxRetries: 100, Budget: &RetryBudget{Percent: 20, MinConcurrency: 3}}, active: 5, admitted: 3},
		{name: "budget share", limits: &Thresholds{Budget: &RetryBudget{Percent: 20, MinConcurrency: 3}}, active: 50, admitted: 10},
		{name: "budget zero floor", limits: &Thresholds{Budget: &RetryBudget{Percent: 50}}, active: 4, admitted: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kinds []string
			pool := NewPool(Settings{Name: "app"})
			c := Build(Config{Name: "app", Pool: pool, Balancer: roundRobin(), Thresholds: tt.limits,
				OnOverflow: func(k string) { kinds = append(kinds, k) }})
			pool.breaker.requests.Store(tt.active)
			var releases []func()
			for {
				release, ok := c.AcquireRetry()
				if !ok {
					break
				}
				releases = append(releases, release)
				if int64(len(releases)) > tt.admitted {
					break
				}
			}
			if int64(len(releases)) != tt.admitted {
				t.Fatalf("admitted %d retries, want %d", len(releases), tt.admitted)
			}
			if len(kinds) != 1 || kinds[0] != OverflowRetries {
				t.Fatalf("overflows %v, want one %q", kinds, OverflowRetries)
			}
			if len(releases) == 0 {
				return
			}
			releases[0]()
			if _, ok := c.AcquireRetry(); !ok {
				t.Fatal("a released retry slot is not reusable")
			}
		})
	}
}

func TestAcquireRetryConcurrent(t *testing.T) {
	c := Build(Config{Name: "app", Pool: NewPool(Settings{Name: "app"}), Balancer: roundRobin(),
		Thresholds: &Thresholds{MaxRetries: 4}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak, cur := 0, 0
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				release, ok := c.AcquireRetry()
				if !ok {
					continue
				}
				mu.Lock()
				cur++
				peak = max(peak, cur)
				cur--
				mu.Unlock()
				release()
			}
		}()
	}
	wg.Wait()
	if got := c.pool.breaker.retries.Load(); got != 0 {
		t.Fatalf("retries in flight after all released: %d", got)
	}
	if peak > 4 {
		t.Fatalf("peak %d retries in flight, limit 4", peak)
	}
}

// A request over max_requests is answered at once, while the requests that
// hold the slots are still waiting on their upstream.
func TestMaxRequestsOverflowIsImmediate(t *testing.T) {
	unblock := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-unblock
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	pool := NewPool(Settings{Name: "app"})
	defer pool.Close()
	var overflows []string
	var mu sync.Mutex
	c := Build(Config{Name: "app", Pool: pool, Balancer: roundRobin(),
		Endpoints:  []EndpointSpec{{Address: srv.Listener.Addr().String(), Healthy: true}},
		Thresholds: &Thresholds{MaxRequests: 2},
		OnOverflow: func(k string) { mu.Lock(); overflows = append(overflows, k); mu.Unlock() }})
	ep := c.Endpoints()[0]
	held := make(chan *http.Response, 2)
	for i := 0; i < 2; i++ {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
			res, err := c.RoundTrip(req, ep)
			if err != nil {
				t.Error(err)
			}
			held <- res
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.ActiveRequests() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("requests never in flight")
		}
		time.Sleep(time.Millisecond)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	start := time.Now()
	res, err := c.RoundTrip(req, ep)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("overflow took %v: it must not wait", took)
	}
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("x-weft-overloaded") != "true" {
		t.Fatalf("overflow answer: %d %v", res.StatusCode, res.Header)
	}
	res.Body.Close()
	mu.Lock()
	if len(overflows) != 1 || overflows[0] != OverflowRequests {
		t.Fatalf("overflows %v", overflows)
	}
	mu.Unlock()
	if c.ActiveRequests() != 2 {
		t.Fatalf("an overflow changed the count: %d", c.ActiveRequests())
	}
	// Once the held requests finish, their slots are free again.
	close(unblock)
	for i := 0; i < 2; i++ {
		r := <-held
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	if c.ActiveRequests() != 0 {
		t.Fatalf("slots not released: %d", c.ActiveRequests())
	}
	res, _ = request(t, c)
	if res.Header.Get("x-weft-overloaded") != "" {
		t.Fatal("still overloaded after release")
	}
}

// Dedicated streams over max_connections fail at once; a closed one frees
// its slot.
func TestMaxConnectionsStreams(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	pool := NewPool(Settings{Name: "db", MaxConnections: 1})
	defer pool.Close()
	var kinds []string
	c := Build(Config{Name: "db", Pool: pool, Balancer: roundRobin(),
		Endpoints:  []EndpointSpec{{Address: ln.Addr().String(), Healthy: true}},
		OnOverflow: func(k string) { kinds = append(kinds, k) }})
	ep := c.Endpoints()[0]
	first, err := c.DialStream(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.DialStream(context.Background(), ep); !IsOverflow(err) {
		t.Fatalf("second stream: %v, want an overflow", err)
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Error("stream overflow waited")
	}
	if len(kinds) != 1 || kinds[0] != OverflowConnections {
		t.Fatalf("overflows %v", kinds)
	}
	first.Close()
	third, err := c.DialStream(context.Background(), ep)
	if err != nil {
		t.Fatalf("after a close: %v", err)
	}
	third.Close()
}

// With one connection allowed and one pending request, a third concurrent
// request is refused at once; the pending one is served once the
// connection is free.
func TestMaxPendingRequests(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	pool := NewPool(Settings{Name: "app", MaxConnections: 1})
	defer pool.Close()
	var overflows atomic.Int64
	c := Build(Config{Name: "app", Pool: pool, Balancer: roundRobin(),
		Endpoints:  []EndpointSpec{{Address: srv.Listener.Addr().String(), Healthy: true}},
		Thresholds: &Thresholds{MaxRequests: 100, MaxRetries: 3, MaxPendingRequests: 1, LimitPending: true},
		OnOverflow: func(string) { overflows.Add(1) }})
	ep := c.Endpoints()[0]
	results := make(chan int, 2)
	send := func() {
		req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		res, err := c.RoundTrip(req, ep)
		if err != nil {
			t.Error(err)
			results <- 0
			return
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		results <- res.StatusCode
	}
	go send()
	waitUntil(t, "the first request to hold the connection", func() bool {
		return ep.Stats().ActiveConnections == 1 && pool.breaker.pending.Load() == 0
	})
	go send()
	waitUntil(t, "the second request to be pending", func() bool { return pool.breaker.pending.Load() == 1 })
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	start := time.Now()
	res, err := c.RoundTrip(req, ep)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 100*time.Millisecond || res.StatusCode != 503 ||
		res.Header.Get("X-Weft-Overloaded") != "true" || res.Header.Get("X-Weft-Overflow") != OverflowPending {
		t.Fatalf("third request: %d %v after %v", res.StatusCode, res.Header, time.Since(start))
	}
	res.Body.Close()
	close(release)
	for i := 0; i < 2; i++ {
		if code := <-results; code != http.StatusOK {
			t.Fatalf("held request: %d", code)
		}
	}
	if overflows.Load() != 1 || pool.breaker.pending.Load() != 0 || c.ActiveRequests() != 0 {
		t.Fatalf("overflows %d pending %d active %d", overflows.Load(), pool.breaker.pending.Load(), c.ActiveRequests())
	}
}
