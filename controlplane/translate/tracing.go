package translate

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// otlpExportTimeout bounds one export (Envoy requires http_uri.timeout).
const otlpExportTimeout = 5 * time.Second

// tracingTags are span attributes naming the local workload: the
// destination on the inbound listener, the source everywhere else.
func (t *translation) tracingTags(inbound bool) []*tracingv3.CustomTag {
	side := "weft.source."
	if inbound {
		side = "weft.destination."
	}
	self := ServiceKey{Namespace: t.node.Namespace, Name: t.node.Service}
	var tags []*tracingv3.CustomTag
	add := func(k, v string) {
		if v == "" {
			return
		}
		tags = append(tags, &tracingv3.CustomTag{Tag: side + k,
			Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: v}}})
	}
	add("service", t.node.Service)
	add("namespace", t.node.Namespace)
	add("version", t.node.Version)
	add("workload", t.node.ID)
	add("spiffe_id", t.spiffeID(self))
	return tags
}

// tracing sets an HttpConnectionManager's tracing when the Mesh asks for it.
func (t *translation) tracing(h *hcmv3.HttpConnectionManager, listener string) {
	tr := t.in.Mesh.Tracing
	if tr == nil || tr.OTLP == nil {
		return
	}
	target, err := tr.OTLP.Target()
	if err != nil {
		// Validation refused such a Mesh; a stored one from an older
		// version is reported rather than half-applied.
		if t.err == nil {
			t.err = err
		}
		return
	}
	otel := &tracev3.OpenTelemetryConfig{ServiceName: xdsmeta.ServiceHost(t.node.Service, t.node.Namespace)}
	timeout := durationpb.New(otlpExportTimeout)
	if tr.OTLP.Protocol == v1alpha1.OTLPHTTP {
		otel.HttpService = &corev3.HttpService{HttpUri: &corev3.HttpUri{
			Uri:              target.URL(),
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: xdsmeta.TracingCluster},
			Timeout:          timeout,
		}}
	} else {
		otel.GrpcService = &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: xdsmeta.TracingCluster,
				Authority:   target.Host,
			}},
			Timeout: timeout,
		}
	}
	h.Tracing = &hcmv3.HttpConnectionManager_Tracing{
		RandomSampling: &typev3.Percent{Value: tr.SamplingPercent()},
		CustomTags:     t.tracingTags(listener == xdsmeta.InboundListener),
		Provider: &tracev3.Tracing_Http{
			Name:       xdsmeta.TracingProvider,
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: t.any(otel)},
		},
	}
}

// tracingCluster is the collector's cluster, nil when tracing is off or no
// HTTP listener traces. gRPC needs HTTP/2 to the collector.
func (t *translation) tracingCluster(listeners []types.Resource) *clusterv3.Cluster {
	tr := t.in.Mesh.Tracing
	if tr == nil || tr.OTLP == nil || !tracesHTTP(listeners) {
		return nil
	}
	target, err := tr.OTLP.Target()
	if err != nil {
		return nil // reported by tracing
	}
	addr := &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       target.Addr.Addr().String(),
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(target.Addr.Port())},
	}}}
	c := &clusterv3.Cluster{
		Name:                 xdsmeta.TracingCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: xdsmeta.TracingCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}},
			}}}},
		},
		TypedExtensionProtocolOptions: t.httpProtocolOptions(tr.OTLP.Protocol == v1alpha1.OTLPGRPC),
	}
	if target.TLS {
		c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			xdsmeta.MetadataNamespace: {Fields: map[string]*structpb.Value{
				xdsmeta.TracingTLSKey: structpb.NewBoolValue(true),
				xdsmeta.TracingCAKey:  structpb.NewStringValue(tr.OTLP.CA),
				xdsmeta.TracingSNIKey: structpb.NewStringValue(target.Host),
			}},
		}}
	}
	return c
}

// tracesHTTP says some listener has an HttpConnectionManager, which traces.
func tracesHTTP(listeners []types.Resource) bool {
	for _, r := range listeners {
		l, ok := r.(*listenerv3.Listener)
		if !ok {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if f.GetName() == filterHTTPConnectionManager {
					return true
				}
			}
		}
	}
	return false
}
