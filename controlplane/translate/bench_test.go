package translate

import (
	"fmt"
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// BenchmarkForNode translates for a proxy with an HTTP proxy port, which
// reaches every service, in a mesh of 1000 services of 3 workloads each.
func BenchmarkForNode(b *testing.B) {
	benchmarkForNode(b, ForNode)
}

// BenchmarkCacheForNode is BenchmarkForNode through a Cache, as the xDS
// server translates: the resources of each service are built once and
// shared by every proxy that reaches it.
func BenchmarkCacheForNode(b *testing.B) {
	benchmarkForNode(b, NewCache().ForNode)
}

func benchmarkForNode(b *testing.B, forNode func(*Input, xdsmeta.Node) (*Resources, error)) {
	svcs := make([]service, 0, 1000)
	for i := range 1000 {
		s := service{ns: fmt.Sprintf("ns%d", i%10), name: fmt.Sprintf("svc%d", i), protocol: v1alpha1.ProtocolHTTP, port: 8080}
		if i%5 == 0 {
			s.protocol = v1alpha1.ProtocolTCP
		}
		for j := range 3 {
			addr := fmt.Sprintf("10.%d.%d.%d:15006", i/256, i%256, j+1)
			s.workloads = append(s.workloads, workload(s.ns, s.name, fmt.Sprintf("v%d", j), addr, true))
		}
		svcs = append(svcs, s)
	}
	in := input(svcs, false)
	n := node("ns1", "svc1", "10.0.1.1:15006", "svc2.ns2=127.0.0.1:9002", "svc5.ns5=127.0.0.1:9005")
	n.HTTPProxy = "127.0.0.1:15080"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := forNode(in, n); err != nil {
			b.Fatal(err)
		}
	}
}
