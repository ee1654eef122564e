package runtime

import (
	"fmt"

	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/proxy/hcm"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/tcp"
)

// tcpProxy compiles a TcpProxy: one cluster, or weighted_clusters.
func (b *builder) tcpProxy(t *tcpproxyv3.TcpProxy, direction, path string) (*tcp.Proxy, error) {
	observers, err := b.tcpObservers(t, direction, path)
	if err != nil {
		return nil, err
	}
	p := &tcp.Proxy{Log: b.rt.log, Direction: observe.Direction(direction), Listener: b.listenerName,
		Local: b.rt.opts.Workload, Observers: observers}
	switch cs := t.GetClusterSpecifier().(type) {
	case *tcpproxyv3.TcpProxy_Cluster:
		if cs.Cluster == "" {
			break
		}
		p.Backend = backend(b.upstream(direction, cs.Cluster), 0)
		return p, nil
	case *tcpproxyv3.TcpProxy_WeightedClusters:
		var total uint64
		for i, c := range cs.WeightedClusters.GetClusters() {
			cpath := fmt.Sprintf("%s.weighted_clusters.clusters[%d]", path, i)
			if c.GetName() == "" {
				return nil, pathErr(cpath+".name", "a cluster name is required")
			}
			p.Weighted = append(p.Weighted, backend(b.upstream(direction, c.GetName()), c.GetWeight()))
			total += uint64(c.GetWeight())
		}
		if total == 0 {
			return nil, pathErr(path+".weighted_clusters.clusters", "at least one cluster with a weight above zero is required")
		}
		return p, nil
	}
	return nil, pathErr(join(path, "cluster"), "a cluster or weighted_clusters is required")
}

func backend(up *hcm.Upstream, weight uint32) tcp.Backend {
	return tcp.Backend{Name: up.Name, Cluster: up.Cluster, Destination: up.Destination, MTLS: up.MTLS, Weight: weight}
}
