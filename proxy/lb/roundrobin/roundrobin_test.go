package roundrobin

import (
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/weftmesh/weft/proxy/lb"
)

type addr string

func (a addr) Address() string { return string(a) }

func endpoints(n int) []lb.Endpoint {
	eps := make([]lb.Endpoint, n)
	for i := range eps {
		eps[i] = addr("10.0.0." + strconv.Itoa(i+1) + ":80")
	}
	return eps
}

func TestRegistered(t *testing.T) {
	if lb.Get(Name) == nil {
		t.Fatalf("%q is not registered; have %v", Name, lb.Names())
	}
}

func TestPickCyclesEvenly(t *testing.T) {
	p := Build(endpoints(3))
	counts := map[string]int{}
	var last string
	for i := 0; i < 300; i++ {
		ep, err := p.Pick(lb.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if ep.Address() == last {
			t.Fatalf("pick %d: %s twice in a row", i, last)
		}
		last = ep.Address()
		counts[last]++
	}
	for a, n := range counts {
		if n != 100 {
			t.Errorf("%s picked %d times, want 100", a, n)
		}
	}
}

func TestPickConcurrent(t *testing.T) {
	p := Build(endpoints(4))
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := map[string]int{}
			for i := 0; i < 1000; i++ {
				ep, _ := p.Pick(lb.PickInfo{})
				local[ep.Address()]++
			}
			mu.Lock()
			for k, v := range local {
				counts[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for a, n := range counts {
		if n != 2000 {
			t.Errorf("%s picked %d times, want 2000", a, n)
		}
	}
}

func TestEmpty(t *testing.T) {
	if _, err := Build(nil).Pick(lb.PickInfo{}); !errors.Is(err, lb.ErrNoEndpoint) {
		t.Fatalf("Pick on no endpoints: %v, want ErrNoEndpoint", err)
	}
}

func BenchmarkPick(b *testing.B) {
	p := Build(endpoints(5))
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Pick(lb.PickInfo{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Every core moves the one counter: the cost of sharing its cache line.
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Pick(lb.PickInfo{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
