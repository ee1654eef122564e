package cluster

import (
	"math"
	"sync/atomic"
	"time"
)

// ewmaDecay is the peak-EWMA's time constant: an observation weighs half
// as much about seven seconds later (as Linkerd's balancer decays over 10 s).
const ewmaDecay = 10 * time.Second

// peakEWMA is an endpoint's latency estimate: it jumps to a slower
// observation at once and decays towards faster ones with time, so a host
// that turns slow is avoided immediately and trusted again gradually. It is
// updated with compare-and-swap; readers never wait.
type peakEWMA struct {
	bits  atomic.Uint64 // float64 seconds
	stamp atomic.Int64  // unix nanoseconds of the last observation
}

func (p *peakEWMA) value() float64 { return math.Float64frombits(p.bits.Load()) }

func (p *peakEWMA) observe(at time.Time, d time.Duration) {
	rtt := d.Seconds()
	now := at.Add(d).UnixNano()
	prevStamp := p.stamp.Swap(now)
	for {
		old := p.bits.Load()
		cur := math.Float64frombits(old)
		next := rtt
		if cur != 0 && rtt < cur {
			dt := float64(now - prevStamp)
			if dt < 0 {
				dt = 0
			}
			w := math.Exp(-dt / float64(ewmaDecay))
			next = cur*w + rtt*(1-w)
		}
		if p.bits.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}
