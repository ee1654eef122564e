package leastrequest

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/lb"
	"github.com/weftmesh/weft/proxy/lb/roundrobin"
)

type host struct {
	addr    string
	active  int64
	latency float64
}

func (h *host) Address() string       { return h.addr }
func (h *host) ActiveRequests() int64 { return h.active }
func (h *host) LatencyEWMA() float64  { return h.latency }

func TestRegistered(t *testing.T) {
	if _, ok := lb.Get(Name).(lb.Configurable); !ok {
		t.Fatalf("%q is not registered as configurable; have %v", Name, lb.Names())
	}
}

func TestLess(t *testing.T) {
	tests := []struct {
		name string
		aA   int64
		aL   float64
		bA   int64
		bL   float64
		want bool
	}{
		{"fewer active, no latency", 1, 0, 2, 0, true},
		{"one latency unknown: active decides", 3, 0, 2, 0.001, false},
		{"faster", 0, 0.001, 0, 0.020, true},
		{"faster but busy", 30, 0.001, 0, 0.020, false},
		{"equal", 1, 0.01, 1, 0.01, false},
	}
	for _, tt := range tests {
		if got := less(tt.aA, tt.aL, tt.bA, tt.bL); got != tt.want {
			t.Errorf("%s: less = %v", tt.name, got)
		}
	}
}

// With every endpoint sampled (choice_count = n), Pick always takes the
// cheapest.
func TestPickCheapest(t *testing.T) {
	hosts := []*host{{"a", 4, 0.010}, {"b", 0, 0.030}, {"c", 1, 0.002}}
	eps := []lb.Endpoint{hosts[0], hosts[1], hosts[2]}
	b, err := Builder{}.WithConfig(lb.Config{ChoiceCount: 64})
	if err != nil {
		t.Fatal(err)
	}
	p := b.Build(eps)
	for i := 0; i < 100; i++ {
		if ep, _ := p.Pick(lb.PickInfo{}); ep.Address() != "c" {
			t.Fatalf("picked %s, want c", ep.Address())
		}
	}
	if _, err := (Builder{}).WithConfig(lb.Config{ChoiceCount: 1}); err == nil {
		t.Fatal("choice_count 1 accepted")
	}
}

func TestEmpty(t *testing.T) {
	if _, err := (Builder{}).Build(nil).Pick(lb.PickInfo{}); !errors.Is(err, lb.ErrNoEndpoint) {
		t.Fatalf("Pick on no endpoints: %v", err)
	}
}

// Real backends, one 20 ms slower than the others, under concurrent load:
// round robin gives it exactly a quarter of the requests; least_request
// must give it less than half that. With two choices sampled from four, the
// slow endpoint is the only candidate in 1/16 of picks (6%), so its share
// sits near 6-8%; it would take a 12.5% share, about 8 standard deviations
// away over 960 requests, to fail by chance.
func TestAvoidsSlowEndpoint(t *testing.T) {
	const slowDelay = 20 * time.Millisecond
	var specs []cluster.EndpointSpec
	for i := 0; i < 4; i++ {
		delay := time.Duration(0)
		if i == 0 {
			delay = slowDelay
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(delay)
			io.WriteString(w, "ok")
		}))
		defer srv.Close()
		specs = append(specs, cluster.EndpointSpec{Address: srv.Listener.Addr().String(), Healthy: true})
	}
	slow := specs[0].Address
	share := func(b lb.Builder) float64 {
		pool := cluster.NewPool(cluster.Settings{Name: "app"})
		defer pool.Close()
		c := cluster.New("app", pool, b, specs)
		const workers, each = 8, 120
		var mu sync.Mutex
		toSlow := 0
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					ep, err := c.Pick(lb.PickInfo{})
					if err != nil {
						t.Error(err)
						return
					}
					ep.RequestStarted()
					req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
					res, err := c.RoundTrip(req, ep)
					if err != nil {
						t.Error(err)
						ep.RequestFinished(true)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					ep.RequestFinished(false)
					if ep.Address() == slow {
						mu.Lock()
						toSlow++
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		return float64(toSlow) / (workers * each)
	}
	rr := share(lb.Get(roundrobin.Name))
	lr := share(Builder{})
	t.Logf("slow endpoint's share: round_robin %.3f, least_request %.3f", rr, lr)
	if rr < 0.24 || rr > 0.26 {
		t.Fatalf("round robin gave the slow endpoint %.3f, want 0.25", rr)
	}
	if lr >= rr/2 {
		t.Fatalf("least_request gave the slow endpoint %.3f, not clearly less than round robin's %.3f", lr, rr)
	}
}

func BenchmarkPick(b *testing.B) {
	eps := make([]lb.Endpoint, 10)
	for i := range eps {
		eps[i] = &host{addr: "h", active: int64(i), latency: 0.001 * float64(i+1)}
	}
	p := Builder{}.Build(eps)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Pick(lb.PickInfo{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
