package translate

import (
	"os"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

func tracingServices() []service {
	return []service{
		{ns: "shop", name: "web", protocol: v1alpha1.ProtocolHTTP, port: 8080, workloads: []*meshv1.Workload{
			workload("shop", "web", "v1", "127.0.5.1:15006", true),
		}},
		{ns: "shop", name: "catalog", protocol: v1alpha1.ProtocolGRPC, port: 9000, workloads: []*meshv1.Workload{
			workload("shop", "catalog", "v2", "127.0.5.2:15006", true),
		}},
		{ns: "shop", name: "db", protocol: v1alpha1.ProtocolTCP, port: 5432, workloads: []*meshv1.Workload{
			workload("shop", "db", "v1", "127.0.5.3:15006", true),
		}},
	}
}

func tracingMesh(t *testing.T, protocol v1alpha1.OTLPProtocol) v1alpha1.MeshSpec {
	t.Helper()
	sampling := v1alpha1.Percent(2.5)
	m := v1alpha1.MeshSpec{Tracing: &v1alpha1.Tracing{Sampling: &sampling, OTLP: &v1alpha1.OTLP{Protocol: protocol}}}
	switch protocol {
	case v1alpha1.OTLPGRPC:
		m.Tracing.OTLP.Endpoint, m.Tracing.OTLP.Insecure = "127.0.0.1:4317", true
	case v1alpha1.OTLPHTTP:
		ca, err := os.ReadFile("testdata/tracing-ca.pem")
		if err != nil {
			t.Fatal(err)
		}
		m.Tracing.OTLP.Endpoint, m.Tracing.OTLP.CA = "https://10.1.2.3:4318/otlp/v1/traces", string(ca)
	}
	m.Default()
	if errs := m.Validate(v1alpha1.NewPath("spec")); len(errs) > 0 {
		t.Fatal(errs)
	}
	return m
}

// TestTracingGolden: every HttpConnectionManager (inbound, outbound, HTTP
// proxy) traces to the collector's cluster; the TCP listener does not.
func TestTracingGolden(t *testing.T) {
	for _, protocol := range []v1alpha1.OTLPProtocol{v1alpha1.OTLPGRPC, v1alpha1.OTLPHTTP} {
		t.Run(string(protocol), func(t *testing.T) {
			in := input(tracingServices(), false)
			in.Mesh = tracingMesh(t, protocol)
			n := node("shop", "web", "127.0.5.1:15006", "catalog=127.0.0.1:9001", "db=127.0.0.1:9002")
			n.HTTPProxy = "127.0.0.1:15080"
			r, err := ForNode(in, n)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, r, "tracing-"+string(protocol)+".golden")

			traced := 0
			for _, res := range r.Listeners {
				l := res.(*listenerv3.Listener)
				f := l.GetFilterChains()[0].GetFilters()
				h := &hcmv3.HttpConnectionManager{}
				if f[len(f)-1].GetTypedConfig().UnmarshalTo(h) != nil {
					continue
				}
				traced++
				tr := h.GetTracing()
				if tr.GetRandomSampling().GetValue() != 2.5 {
					t.Errorf("%s: sampling %v", l.GetName(), tr.GetRandomSampling())
				}
				otel := &tracev3.OpenTelemetryConfig{}
				if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(otel); err != nil {
					t.Fatalf("%s: %v", l.GetName(), err)
				}
				cluster := otel.GetGrpcService().GetEnvoyGrpc().GetClusterName() + otel.GetHttpService().GetHttpUri().GetCluster()
				if cluster != xdsmeta.TracingCluster || otel.GetServiceName() != "web.shop" {
					t.Errorf("%s: %v", l.GetName(), otel)
				}
				side := "weft.source.workload"
				if l.GetName() == xdsmeta.InboundListener {
					side = "weft.destination.workload"
				}
				found := false
				for _, tag := range tr.GetCustomTags() {
					found = found || tag.GetTag() == side && tag.GetLiteral().GetValue() == n.ID
				}
				if !found {
					t.Errorf("%s: no %s tag in %v", l.GetName(), side, tr.GetCustomTags())
				}
			}
			if traced != 3 {
				t.Errorf("%d traced connection managers, want 3", traced)
			}
			collectors := 0
			for _, res := range r.Clusters {
				if c := res.(*clusterv3.Cluster); c.GetName() == xdsmeta.TracingCluster {
					collectors++
				}
			}
			if collectors != 1 {
				t.Errorf("%d collector clusters", collectors)
			}
		})
	}
}

// A TCP-only proxy gets no collector cluster.
func TestTracingTCPOnly(t *testing.T) {
	in := input(tracingServices(), false)
	in.Mesh = tracingMesh(t, v1alpha1.OTLPGRPC)
	in.Services[ServiceKey{Namespace: "shop", Name: "web"}].Ports[0].Protocol = v1alpha1.ProtocolTCP
	r, err := ForNode(in, node("shop", "web", "127.0.5.1:15006", "db=127.0.0.1:9002"))
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range r.Clusters {
		if strings.HasPrefix(res.(*clusterv3.Cluster).GetName(), "tracing|") {
			t.Fatal("a TCP-only proxy got the collector's cluster")
		}
	}
}
