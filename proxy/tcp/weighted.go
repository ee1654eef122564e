package tcp

import (
	"math/rand/v2"

	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/observe"
)

// Backend is one cluster of a TcpProxy's weighted_clusters.
type Backend struct {
	// Name is the cluster's name; Cluster is nil when it is not configured.
	Name    string
	Cluster *cluster.Cluster
	// Destination is the workload the cluster leads to (its version is the
	// picked endpoint's); MTLS says its connections are mutual TLS.
	Destination observe.Peer
	MTLS        bool
	// Weight is the backend's share; zero takes no connection.
	Weight uint32
}

// pick returns the cluster for one connection: the proxy's only cluster, or
// one of its weighted clusters drawn by weight.
func (p *Proxy) pick() *Backend {
	if len(p.Weighted) == 0 {
		return &p.Backend
	}
	var total uint64
	for i := range p.Weighted {
		total += uint64(p.Weighted[i].Weight)
	}
	if total == 0 {
		return &Backend{}
	}
	n := rand.Uint64N(total)
	for i := range p.Weighted {
		b := &p.Weighted[i]
		if n < uint64(b.Weight) {
			return b
		}
		n -= uint64(b.Weight)
	}
	return &Backend{}
}
