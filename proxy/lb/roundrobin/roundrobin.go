// Package roundrobin is the "round_robin" balancer: each Pick takes the next
// endpoint in turn. The turn is one atomic counter, so Pick takes no lock.
package roundrobin

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/weftmesh/weft/proxy/lb"
)

// Name is the balancer's registered name (lb_policy ROUND_ROBIN).
const Name = "round_robin"

func init() { lb.Register(Name, lb.BuilderFunc(Build)) }

// Build returns a round-robin Picker over endpoints. It starts at a random
// position, as grpc-go does, so that many proxies rebuilding their pickers
// at once do not all send their next request to the same endpoint.
func Build(endpoints []lb.Endpoint) lb.Picker {
	if len(endpoints) == 0 {
		return lb.Empty()
	}
	p := &picker{endpoints: endpoints, n: uint64(len(endpoints))}
	p.next.Store(rand.Uint64N(p.n))
	return p
}

type picker struct {
	endpoints []lb.Endpoint
	n         uint64
	next      atomic.Uint64
}

func (p *picker) Pick(lb.PickInfo) (lb.Endpoint, error) {
	i := p.next.Add(1) - 1
	return p.endpoints[i%p.n], nil
}

var _ lb.Picker = (*picker)(nil)
