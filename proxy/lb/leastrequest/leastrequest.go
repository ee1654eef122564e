// Package leastrequest is the "least_request" balancer (lb_policy
// LEAST_REQUEST): each Pick samples ChoiceCount endpoints at random (two by
// default: the power of two choices) and takes the one of lowest cost, the
// endpoint's peak-EWMA latency times its requests in flight plus one, as
// Linkerd's balancer does. Endpoints without a latency yet are compared by
// requests in flight alone, as Envoy's least_request does.
package leastrequest

import (
	"fmt"
	"math/rand/v2"

	"github.com/weftmesh/weft/proxy/lb"
)

// Name is the balancer's registered name.
const Name = "least_request"

// DefaultChoiceCount is Envoy's least_request_lb_config.choice_count default.
const DefaultChoiceCount = 2

// Load is what the balancer reads of an endpoint; endpoints from
// proxy/cluster provide it. An endpoint without it counts as idle.
type Load interface {
	ActiveRequests() int64
	// LatencyEWMA is the peak-EWMA latency in seconds, zero if unknown.
	LatencyEWMA() float64
}

// Builder builds least_request Pickers.
type Builder struct {
	// ChoiceCount is the endpoints sampled per Pick; zero means two.
	ChoiceCount int
}

func init() { lb.Register(Name, Builder{}) }

// WithConfig returns a Builder with cfg's choice count.
func (b Builder) WithConfig(cfg lb.Config) (lb.Builder, error) {
	if cfg.ChoiceCount == 1 || cfg.ChoiceCount < 0 {
		return nil, fmt.Errorf("choice_count %d: must be at least 2", cfg.ChoiceCount)
	}
	return Builder{ChoiceCount: cfg.ChoiceCount}, nil
}

// Build returns a Picker over endpoints.
func (b Builder) Build(endpoints []lb.Endpoint) lb.Picker {
	if len(endpoints) == 0 {
		return lb.Empty()
	}
	k := b.ChoiceCount
	if k == 0 {
		k = DefaultChoiceCount
	}
	p := &picker{endpoints: endpoints, loads: make([]Load, len(endpoints)), n: uint64(len(endpoints)), k: k}
	for i, e := range endpoints {
		if l, ok := e.(Load); ok {
			p.loads[i] = l
		}
	}
	return p
}

type picker struct {
	endpoints []lb.Endpoint
	loads     []Load // resolved once: Pick makes no type assertion
	n         uint64
	k         int
}

func (p *picker) Pick(lb.PickInfo) (lb.Endpoint, error) {
	if p.n == 1 {
		return p.endpoints[0], nil
	}
	best := int(rand.Uint64N(p.n))
	bestActive, bestLatency := p.load(best)
	for c := 1; c < p.k; c++ {
		i := int(rand.Uint64N(p.n))
		if i == best {
			continue
		}
		active, latency := p.load(i)
		if less(active, latency, bestActive, bestLatency) {
			best, bestActive, bestLatency = i, active, latency
		}
	}
	return p.endpoints[best], nil
}

func (p *picker) load(i int) (active int64, latency float64) {
	if l := p.loads[i]; l != nil {
		return l.ActiveRequests(), l.LatencyEWMA()
	}
	return 0, 0
}

// less reports whether endpoint a costs less than endpoint b.
func less(aActive int64, aLatency float64, bActive int64, bLatency float64) bool {
	if aLatency == 0 || bLatency == 0 {
		return aActive < bActive
	}
	return aLatency*float64(aActive+1) < bLatency*float64(bActive+1)
}

var (
	_ lb.Picker       = (*picker)(nil)
	_ lb.Configurable = Builder{}
)
