package localratelimit

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// epoch is the start of the buckets' clock: a monotonic reading, so that a
// wall-clock step never fills or drains a bucket.
var epoch = time.Now()

// now is the buckets' clock, in seconds since epoch.
func now() float64 { return time.Since(epoch).Seconds() }

// bucketSpec is the shape of a token bucket: it holds at most maxTokens and
// refills tokensPerFill every fillInterval, continuously (as Envoy's atomic
// token bucket does) rather than in steps.
type bucketSpec struct {
	maxTokens     uint32
	tokensPerFill uint32
	fillInterval  time.Duration
}

// Bucket is a token bucket that takes no lock: its whole state is the
// theoretical time at which it would be empty again (GCRA), moved forward
// by one token's cost with a compare-and-swap per request.
type Bucket struct {
	// tat holds math.Float64bits of the time, in seconds since epoch, by
	// which the tokens taken so far will have been refilled.
	tat  atomic.Uint64
	cost float64 // seconds to refill one token
	tau  float64 // seconds to refill a whole bucket
	spec bucketSpec
}

func newBucket(s bucketSpec) *Bucket {
	cost := s.fillInterval.Seconds() / float64(s.tokensPerFill)
	return &Bucket{cost: cost, tau: cost * float64(s.maxTokens), spec: s}
}

// take spends one token at time t. When the bucket is empty it returns
// false and how long until a token is back.
func (b *Bucket) take(t float64) (ok bool, remaining uint32, wait time.Duration) {
	// Allow for rounding: a full bucket must let exactly maxTokens through.
	limit := b.tau + b.cost*1e-6
	for {
		old := b.tat.Load()
		tat := math.Float64frombits(old)
		if tat < t {
			tat = t
		}
		next := tat + b.cost
		if ahead := next - t; ahead > limit {
			return false, 0, time.Duration((ahead - b.tau) * float64(time.Second))
		}
		if b.tat.CompareAndSwap(old, math.Float64bits(next)) {
			left := (limit - (next - t)) / b.cost
			return true, uint32(math.Max(0, left)), 0
		}
	}
}

// sourceBuckets holds one bucket per distinct descriptor value (per caller)
// of a wildcard descriptor, at most max of them. Lookups take no lock; when
// a new value would make one too many, an arbitrary other bucket goes
// (Envoy drops the least recently used).
type sourceBuckets struct {
	spec bucketSpec
	max  int64
	m    sync.Map // string -> *Bucket
	n    atomic.Int64
}

func (d *sourceBuckets) get(value string) *Bucket {
	if b, ok := d.m.Load(value); ok {
		return b.(*Bucket)
	}
	b, loaded := d.m.LoadOrStore(value, newBucket(d.spec))
	if !loaded && d.n.Add(1) > d.max {
		d.m.Range(func(k, _ any) bool {
			if k.(string) == value {
				return true
			}
			if _, gone := d.m.LoadAndDelete(k); gone {
				d.n.Add(-1)
			}
			return false
		})
	}
	return b.(*Bucket)
}
