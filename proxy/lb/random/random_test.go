package random

import (
	"errors"
	"math"
	"strconv"
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

// 40,000 picks over 4 endpoints: each count is Binomial(40000, 1/4), sd
// ≈ 87; a bound of 8 sd fails by chance about once in 10^15 runs.
func TestPickUniform(t *testing.T) {
	const n, picks = 4, 40000
	p := Build(endpoints(n))
	counts := map[string]int{}
	for i := 0; i < picks; i++ {
		ep, err := p.Pick(lb.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		counts[ep.Address()]++
	}
	mean := float64(picks) / n
	sd := math.Sqrt(picks * (1.0 / n) * (1 - 1.0/n))
	if len(counts) != n {
		t.Fatalf("picked %d endpoints, want %d", len(counts), n)
	}
	for a, c := range counts {
		if math.Abs(float64(c)-mean) > 8*sd {
			t.Errorf("%s picked %d times, want %.0f ± %.0f", a, c, mean, 8*sd)
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
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Pick(lb.PickInfo{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
