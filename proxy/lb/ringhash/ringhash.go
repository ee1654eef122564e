// Package ringhash is the "ring_hash" balancer (lb_policy RING_HASH): a
// ketama-style consistent-hash ring. Each endpoint owns points on a 64-bit
// ring, and a request goes to the owner of the first point at or after its
// hash (lb.PickInfo.Hash). Points are a pure function of the endpoint's
// address, so when an endpoint leaves, only the keys it owned move.
package ringhash

import (
	"fmt"
	"hash/fnv"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/weftmesh/weft/proxy/lb"
)

// Name is the balancer's registered name.
const Name = "ring_hash"

// Envoy's ring_hash_lb_config defaults.
const (
	DefaultMinRingSize = 1024
	DefaultMaxRingSize = 8 * 1024 * 1024
)

// Builder builds ring_hash Pickers.
type Builder struct {
	// MinRingSize and MaxRingSize bound the ring's points; zero means
	// Envoy's defaults.
	MinRingSize, MaxRingSize uint64
}

func init() { lb.Register(Name, Builder{}) }

// WithConfig returns a Builder with cfg's ring sizes.
func (b Builder) WithConfig(cfg lb.Config) (lb.Builder, error) {
	nb := Builder{MinRingSize: cfg.MinRingSize, MaxRingSize: cfg.MaxRingSize}
	lo, hi := nb.sizes()
	if lo > hi {
		return nil, fmt.Errorf("minimum_ring_size %d is above maximum_ring_size %d", lo, hi)
	}
	return nb, nil
}

func (b Builder) sizes() (lo, hi uint64) {
	lo, hi = b.MinRingSize, b.MaxRingSize
	if lo == 0 {
		lo = DefaultMinRingSize
	}
	if hi == 0 {
		hi = DefaultMaxRingSize
	}
	return lo, hi
}

// PointsPerEndpoint is how many points each of n endpoints gets: enough for
// the ring to hold at least the minimum, rounded up to a power of two, so
// that the count, and with it every remaining endpoint's points, usually
// stays the same when an endpoint comes or goes; never more than the
// maximum allows.
func (b Builder) PointsPerEndpoint(n int) uint64 {
	lo, hi := b.sizes()
	per := (lo + uint64(n) - 1) / uint64(n)
	if per > 1 {
		per = 1 << bits.Len64(per-1)
	}
	if per*uint64(n) > hi {
		per = hi / uint64(n)
	}
	return max(per, 1)
}

// Build returns a ring over endpoints.
func (b Builder) Build(endpoints []lb.Endpoint) lb.Picker {
	if len(endpoints) == 0 {
		return lb.Empty()
	}
	per := b.PointsPerEndpoint(len(endpoints))
	r := &ring{endpoints: endpoints, points: make([]point, 0, per*uint64(len(endpoints)))}
	h := fnv.New64a()
	var buf []byte
	for i, e := range endpoints {
		for k := uint64(0); k < per; k++ {
			buf = append(append(append(buf[:0], e.Address()...), '_'), strconv.FormatUint(k, 10)...)
			h.Reset()
			h.Write(buf)
			r.points = append(r.points, point{hash: mix(h.Sum64()), endpoint: uint32(i)})
		}
	}
	// Ties (vanishingly rare) break by address, so that the ring does not
	// depend on the endpoints' order.
	slices.SortFunc(r.points, func(a, b point) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return compareStrings(endpoints[a.endpoint].Address(), endpoints[b.endpoint].Address())
	})
	return r
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// mix is splitmix64's finaliser: FNV-1a of keys that differ in their last
// digits is poorly spread over the high bits the ring orders by.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

type point struct {
	hash     uint64
	endpoint uint32
}

type ring struct {
	endpoints []lb.Endpoint
	points    []point
}

// Pick goes to the owner of the first point at or after the request's hash.
// A request without a hash (the route defines no hash policy) goes to a
// random endpoint, as in Envoy.
func (r *ring) Pick(info lb.PickInfo) (lb.Endpoint, error) {
	// The request's hash is mixed like the points are: FNV-1a of keys that
	// differ only in their last bytes (user-1, user-2, ...) would otherwise
	// bunch up on one stretch of the ring.
	h := mix(info.Hash)
	if info.Hash == 0 {
		h = rand.Uint64()
	}
	lo, hi := 0, len(r.points)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.points[mid].hash < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(r.points) {
		lo = 0
	}
	return r.endpoints[r.points[lo].endpoint], nil
}

var (
	_ lb.Picker       = (*ring)(nil)
	_ lb.Configurable = Builder{}
)
