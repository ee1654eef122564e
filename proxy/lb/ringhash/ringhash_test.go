package ringhash

import (
	"errors"
	"fmt"
	"hash/fnv"
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

// keyHash is what the proxy's hash policy sends: plain FNV-1a of the key.
func keyHash(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64()
}

func owners(p lb.Picker, keys int) []string {
	out := make([]string, keys)
	for k := range out {
		ep, err := p.Pick(lb.PickInfo{Hash: keyHash("user-" + strconv.Itoa(k))})
		if err != nil {
			panic(err)
		}
		out[k] = ep.Address()
	}
	return out
}

func TestRegistered(t *testing.T) {
	if _, ok := lb.Get(Name).(lb.Configurable); !ok {
		t.Fatalf("%q is not registered as configurable; have %v", Name, lb.Names())
	}
}

func TestSameKeySameEndpoint(t *testing.T) {
	eps := endpoints(5)
	a, b := owners(Builder{}.Build(eps), 1000), owners(Builder{}.Build(eps), 1000)
	// The order endpoints arrive in does not matter either.
	rev := append([]lb.Endpoint(nil), eps...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	c := owners(Builder{}.Build(rev), 1000)
	for k := range a {
		if a[k] != b[k] || a[k] != c[k] {
			t.Fatalf("key %d: %s, %s, %s", k, a[k], b[k], c[k])
		}
	}
}

// Removing an endpoint moves its keys and no other; adding it back returns
// exactly those keys.
func TestRemovingAnEndpointMovesOnlyItsKeys(t *testing.T) {
	checked := 0
	for _, n := range []int{3, 5, 10, 17} {
		eps := endpoints(n)
		b := Builder{MinRingSize: 4096}
		before := owners(b.Build(eps), 20000)
		gone := eps[n/2].Address()
		rest := append(append([]lb.Endpoint(nil), eps[:n/2]...), eps[n/2+1:]...)
		if b.PointsPerEndpoint(n) != b.PointsPerEndpoint(n-1) {
			// The ring's resolution changes with the count: only a bound holds.
			continue
		}
		checked++
		after := owners(b.Build(rest), 20000)
		moved := 0
		for k := range before {
			if before[k] != gone && after[k] != before[k] {
				t.Fatalf("n=%d: key %d moved from %s to %s though %s left", n, k, before[k], after[k], gone)
			}
			if before[k] == gone {
				moved++
				if after[k] == gone {
					t.Fatalf("n=%d: key %d still on the removed endpoint", n, k)
				}
			}
		}
		if moved == 0 {
			t.Fatalf("n=%d: the removed endpoint owned no key", n)
		}
	}
	if checked == 0 {
		t.Fatal("no endpoint count kept its points per endpoint")
	}
}

func TestPointsPerEndpoint(t *testing.T) {
	tests := []struct {
		b    Builder
		n    int
		want uint64
	}{
		{Builder{}, 1, 1024},
		{Builder{}, 3, 512},
		{Builder{}, 5, 256},
		{Builder{}, 4, 256},
		{Builder{MinRingSize: 4096}, 17, 256},
		{Builder{MinRingSize: 1024, MaxRingSize: 1000}, 3, 333},
		{Builder{MaxRingSize: 2}, 5, 1},
	}
	for _, tt := range tests {
		if got := tt.b.PointsPerEndpoint(tt.n); got != tt.want {
			t.Errorf("%+v over %d: %d points each, want %d", tt.b, tt.n, got, tt.want)
		}
	}
	if _, err := (Builder{}).WithConfig(lb.Config{MinRingSize: 10, MaxRingSize: 5}); err == nil {
		t.Error("minimum above maximum accepted")
	}
}

// Keys spread evenly: with 256+ points each, no endpoint's share of 50,000
// keys strays beyond 30% of the mean.
func TestSpread(t *testing.T) {
	const n, keys = 5, 50000
	counts := map[string]int{}
	for _, a := range owners(Builder{}.Build(endpoints(n)), keys) {
		counts[a]++
	}
	for a, c := range counts {
		if math.Abs(float64(c)-keys/n) > 0.3*keys/n {
			t.Errorf("%s owns %d keys, want about %d", a, c, keys/n)
		}
	}
}

func TestEmpty(t *testing.T) {
	if _, err := (Builder{}).Build(nil).Pick(lb.PickInfo{Hash: 1}); !errors.Is(err, lb.ErrNoEndpoint) {
		t.Fatalf("Pick on no endpoints: %v", err)
	}
}

func BenchmarkPick(b *testing.B) {
	p := Builder{}.Build(endpoints(20))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		h := uint64(1)
		for pb.Next() {
			h = h*6364136223846793005 + 1442695040888963407
			if _, err := p.Pick(lb.PickInfo{Hash: h}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestSimilarKeysSpread: keys that differ only in their last bytes (user-0,
// user-1, ...) hash to nearby FNV-1a values; they must still spread over the
// ring rather than bunch on one endpoint.
func TestSimilarKeysSpread(t *testing.T) {
	p := Builder{}.Build(endpoints(3))
	counts := map[string]int{}
	for i := range 600 {
		ep, err := p.Pick(lb.PickInfo{Hash: keyHash(fmt.Sprintf("user-%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		counts[ep.Address()]++
	}
	for addr, n := range counts {
		// An even share is 200; 100..300 is far outside chance for a sound mix.
		if n < 100 || n > 300 {
			t.Fatalf("endpoint %s got %d of 600 similar keys: %v", addr, n, counts)
		}
	}
	if len(counts) != 3 {
		t.Fatalf("similar keys reached %d of 3 endpoints: %v", len(counts), counts)
	}
}
