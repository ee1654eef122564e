package runtime

import (
	"fmt"

	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/proxy/tcp"
)

// tcpProxy compiles a TcpProxy: one cluster, or weighted_clusters.
func (b *builder) tcpProxy(t *tcpproxyv3.TcpProxy, direction, path string) (*tcp.Proxy, error) {
	p := &tcp.Proxy{Log: b.rt.log}
	switch cs := t.GetClusterSpecifier().(type) {
	case *tcpproxyv3.TcpProxy_Cluster:
		if cs.Cluster == "" {
			break
		}
		up := b.upstream(direction, cs.Cluster)
		p.ClusterName, p.Cluster, p.Stats = up.Name, up.Cluster, up.Stats
		return p, nil
	case *tcpproxyv3.TcpProxy_WeightedClusters:
		var total uint64
		for i, c := range cs.WeightedClusters.GetClusters() {
			cpath := fmt.Sprintf("%s.weighted_clusters.clusters[%d]", path, i)
			if c.GetName() == "" {
				return nil, pathErr(cpath+".name", "a cluster name is required")
			}
			up := b.upstream(direction, c.GetName())
			p.Weighted = append(p.Weighted, tcp.Backend{Name: up.Name, Cluster: up.Cluster, Stats: up.Stats, Weight: c.GetWeight()})
			total += uint64(c.GetWeight())
		}
		if total == 0 {
			return nil, pathErr(path+".weighted_clusters.clusters", "at least one cluster with a weight above zero is required")
		}
		return p, nil
	}
	return nil, pathErr(join(path, "cluster"), "a cluster or weighted_clusters is required")
}
