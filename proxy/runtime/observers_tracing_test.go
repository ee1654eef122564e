package runtime

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/internal/testpki"
)

// withTracing adds the OpenTelemetry tracer to the inbound connection
// manager and the collector's cluster, as the translator does.
func withTracing(t *testing.T, r *Resources, collector string, edit func(*hcmv3.HttpConnectionManager_Tracing)) {
	t.Helper()
	c := &clusterv3.Cluster{
		Name:                 xdsmeta.TracingCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment:       loadAssignment(t, xdsmeta.TracingCluster, collector),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			httpProtocolOptionsKey: mustAny(t, http2Options()),
		},
	}
	r.Clusters[c.Name] = c
	otel := &tracev3.OpenTelemetryConfig{ServiceName: "web.default", GrpcService: &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: xdsmeta.TracingCluster}},
	}}
	inboundConnectionManager(t, r, func(h *hcmv3.HttpConnectionManager) {
		h.Tracing = &hcmv3.HttpConnectionManager_Tracing{
			RandomSampling: &typev3.Percent{Value: 10},
			CustomTags: []*tracingv3.CustomTag{{Tag: "weft.destination.workload",
				Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: "web.default@x"}}}},
			Provider: &tracev3.Tracing_Http{Name: xdsmeta.TracingProvider,
				ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(t, otel)}},
		}
		if edit != nil {
			edit(h.Tracing)
		}
	})
}

func TestTracingFields(t *testing.T) {
	const path = `listener "inbound": filter_chains[0].filters[0].typed_config(envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager).tracing`
	tests := []struct {
		name string
		edit func(*testing.T, *Resources)
		want string
	}{
		{"accepted", func(t *testing.T, r *Resources) { withTracing(t, r, "127.0.0.1:4317", nil) }, ""},
		{"zipkin", func(t *testing.T, r *Resources) {
			withTracing(t, r, "127.0.0.1:4317", func(tr *hcmv3.HttpConnectionManager_Tracing) {
				tr.Provider = &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin",
					ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(t, &tracev3.ZipkinConfig{CollectorCluster: "z", CollectorEndpoint: "/api/v2/spans"})}}
			})
		}, path + ".provider: envoy.tracers.zipkin is not supported"},
		{"header tag", func(t *testing.T, r *Resources) {
			withTracing(t, r, "127.0.0.1:4317", func(tr *hcmv3.HttpConnectionManager_Tracing) {
				tr.CustomTags = []*tracingv3.CustomTag{{Tag: "h", Type: &tracingv3.CustomTag_RequestHeader{
					RequestHeader: &tracingv3.CustomTag_Header{Name: "x-user"}}}}
			})
		}, path + ".custom_tags[0].request_header: field is not supported by this proxy"},
		{"client sampling", func(t *testing.T, r *Resources) {
			withTracing(t, r, "127.0.0.1:4317", func(tr *hcmv3.HttpConnectionManager_Tracing) {
				tr.ClientSampling = &typev3.Percent{Value: 1}
			})
		}, path + ".client_sampling: field is not supported by this proxy"},
		{"no collector", func(t *testing.T, r *Resources) {
			withTracing(t, r, "127.0.0.1:4317", func(tr *hcmv3.HttpConnectionManager_Tracing) {
				tr.Provider.ConfigType = &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(t, &tracev3.OpenTelemetryConfig{})}
			})
		}, path + ".provider.typed_config(envoy.config.trace.v3.OpenTelemetryConfig): grpc_service or http_service is required"},
		{"collector cluster with endpoints over EDS", func(t *testing.T, r *Resources) {
			withTracing(t, r, "127.0.0.1:4317", nil)
			c := r.Clusters[xdsmeta.TracingCluster]
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
			c.LoadAssignment, c.EdsClusterConfig = nil, &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()}
		}, `grpc_service.envoy_grpc.cluster_name: cluster "tracing|otlp" must be STATIC with exactly one endpoint`},
		{"bad collector CA", func(t *testing.T, r *Resources) {
			withTracing(t, r, "127.0.0.1:4317", nil)
			r.Clusters[xdsmeta.TracingCluster].Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				xdsmeta.MetadataNamespace: {Fields: map[string]*structpb.Value{
					xdsmeta.TracingTLSKey: structpb.NewBoolValue(true), xdsmeta.TracingCAKey: structpb.NewStringValue("junk")}},
			}}
		}, "metadata otlp_ca holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fullConfig(t)
			tt.edit(t, r)
			rt := New(Options{})
			defer rt.Close()
			_, err := rt.build(r, rt.cur.Load())
			rt.tracing.settle(false)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// A missing collector cluster is a cross-reference, not an error: the
// listener is served and its spans are dropped until the cluster arrives.
func TestTracingClusterNotYetReceived(t *testing.T) {
	r := fullConfig(t)
	withTracing(t, r, "127.0.0.1:4317", nil)
	delete(r.Clusters, xdsmeta.TracingCluster)
	rt := New(Options{})
	defer rt.Close()
	if _, err := rt.build(r, rt.cur.Load()); err != nil {
		t.Fatal(err)
	}
	rt.tracing.settle(false)
	if len(rt.tracing.live) != 0 {
		t.Fatalf("%d exporters without a collector", len(rt.tracing.live))
	}
}

// One exporter per collector, kept across updates that keep it, closed by
// the update that drops it and by Close; a rejected update leaves the
// exporter in service alone.
func TestTracingExporterLifecycle(t *testing.T) {
	ca := testpki.NewCA(t, "root")
	rt := New(Options{Identity: newIdentity(t, ca, svcWeb)})
	defer rt.Close()

	traced := fullConfig(t)
	withTracing(t, traced, "127.0.0.1:4317", nil)
	if err := rt.Apply(traced); err != nil {
		t.Fatal(err)
	}
	if len(rt.tracing.live) != 1 {
		t.Fatalf("%d exporters, want 1", len(rt.tracing.live))
	}
	var first any
	for _, x := range rt.tracing.live {
		first = x
	}
	again := fullConfig(t)
	withTracing(t, again, "127.0.0.1:4317", nil)
	if err := rt.Apply(again); err != nil {
		t.Fatal(err)
	}
	for _, x := range rt.tracing.live {
		if any(x) != first {
			t.Fatal("an unchanged collector got a new exporter")
		}
	}

	bad := fullConfig(t)
	withTracing(t, bad, "127.0.0.2:4317", nil)
	bad.Clusters[grpcCluster].LbPolicy = clusterv3.Cluster_MAGLEV
	if err := rt.Apply(bad); err == nil {
		t.Fatal("a bad config was applied")
	}
	if len(rt.tracing.live) != 1 {
		t.Fatalf("after a rejected update: %d exporters, want 1", len(rt.tracing.live))
	}

	if err := rt.Apply(fullConfig(t)); err != nil {
		t.Fatal(err)
	}
	if len(rt.tracing.live) != 0 {
		t.Fatalf("tracing removed: %d exporters left", len(rt.tracing.live))
	}
}
