// Package random is the "random" balancer (lb_policy RANDOM): each Pick
// takes an endpoint uniformly at random, from a per-goroutine generator, so
// Pick shares no state between cores.
package random

import (
	"math/rand/v2"

	"github.com/weftmesh/weft/proxy/lb"
)

// Name is the balancer's registered name.
const Name = "random"

func init() { lb.Register(Name, lb.BuilderFunc(Build)) }

// Build returns a random Picker over endpoints.
func Build(endpoints []lb.Endpoint) lb.Picker {
	if len(endpoints) == 0 {
		return lb.Empty()
	}
	return &picker{endpoints: endpoints, n: uint64(len(endpoints))}
}

type picker struct {
	endpoints []lb.Endpoint
	n         uint64
}

func (p *picker) Pick(lb.PickInfo) (lb.Endpoint, error) {
	return p.endpoints[rand.Uint64N(p.n)], nil
}

var _ lb.Picker = (*picker)(nil)
