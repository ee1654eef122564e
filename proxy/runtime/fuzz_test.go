package runtime

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

// FuzzBuild feeds arbitrary resources to validation and compilation: they
// meet whatever the control plane (or an attacker in its place) sends, and
// must answer with an error, never a panic.
func FuzzBuild(f *testing.F) {
	seed := fullConfig(f)
	for _, l := range seed.Listeners {
		f.Add(uint8(0), mustMarshal(f, l))
	}
	for _, r := range seed.Routes {
		f.Add(uint8(1), mustMarshal(f, r))
	}
	for _, c := range seed.Clusters {
		f.Add(uint8(2), mustMarshal(f, c))
	}
	for _, e := range seed.Endpoints {
		f.Add(uint8(3), mustMarshal(f, e))
	}
	for _, s := range seed.Secrets {
		f.Add(uint8(4), mustMarshal(f, s))
	}
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		res := emptyResources()
		var name string
		var err error
		switch kind % 5 {
		case 0:
			m := &listenerv3.Listener{}
			err, name = proto.Unmarshal(b, m), m.GetName()
			res.Listeners[name] = m
		case 1:
			m := &routev3.RouteConfiguration{}
			err, name = proto.Unmarshal(b, m), m.GetName()
			res.Routes[name] = m
		case 2:
			m := &clusterv3.Cluster{}
			err, name = proto.Unmarshal(b, m), m.GetName()
			res.Clusters[name] = m
		case 3:
			m := &endpointv3.ClusterLoadAssignment{}
			err, name = proto.Unmarshal(b, m), m.GetClusterName()
			res.Endpoints[name] = m
		case 4:
			m := &tlsv3.Secret{}
			err, name = proto.Unmarshal(b, m), m.GetName()
			res.Secrets[name] = m
		}
		if err != nil {
			return
		}
		rt := New(Options{})
		_, _ = rt.build(res, rt.cur.Load())
	})
}

func mustMarshal(f *testing.F, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
