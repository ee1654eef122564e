package translate

import (
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/types/known/structpb"
)

// outboundCluster is the mTLS cluster of a mesh service, its endpoints from
// EDS. HTTP goes over pooled HTTP/2 between proxies, whatever the app speaks.
// A subset's cluster is the same with its own name and EDS service name.
// Both carry what the service's DestinationPolicy asks.
func (t *translation) outboundCluster(key ServiceKey, subset string) *clusterv3.Cluster {
	name := targetCluster(key, subset)
	proto := t.in.protocol(key)
	http := proto.IsHTTP()
	// Between proxies a request keeps its protocol, as in Istio: HTTP/1.1
	// over kept-alive HTTP/1.1 connections, h2 and gRPC multiplexed over
	// HTTP/2. An http2 or grpc service gets HTTP/2 alone.
	upstream := upstreamDownstream
	alpn := []string{alpnH2, alpnHTTP11}
	switch {
	case !http:
		alpn = []string{xdsmeta.ALPNTCP}
	case proto == v1alpha1.ProtocolHTTP2 || proto == v1alpha1.ProtocolGRPC:
		upstream, alpn = upstreamHTTP2, []string{alpnH2}
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: t.adsConfig()},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		TransportSocket:      t.upstreamTLS(t.spiffeID(key), alpn),
	}
	if subset != "" {
		c.EdsClusterConfig.ServiceName = name
	}
	if http {
		c.TypedExtensionProtocolOptions = t.protocolOptionsFor(upstream)
	}
	t.applyPolicy(c, key)
	return c
}

// loadAssignment lists a service's ready workloads by their proxies'
// inbound addresses. A workload whose address is not IP:port is left out:
// the registry checks addresses, and one bad registration must not cost
// every proxy its configuration. A subset's lists only the workloads whose
// labels include the subset's.
func (t *translation) loadAssignment(key ServiceKey, subset *v1alpha1.Subset) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: xdsmeta.OutboundCluster(key.Name, key.Namespace)}
	ready := t.in.readyWorkloads(key)
	if subset != nil {
		cla.ClusterName = targetCluster(key, subset.Name)
		ready = slices.DeleteFunc(ready, func(w *meshv1.Workload) bool {
			return !inSubset(w.GetLabels(), w.GetVersion(), subset.Labels)
		})
	}
	lbs := make([]*endpointv3.LbEndpoint, 0, len(ready))
	for _, w := range ready {
		addr, err := socketAddress(w.GetAddress())
		if err != nil {
			continue
		}
		lbs = append(lbs, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}},
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				xdsmeta.MetadataNamespace: {Fields: map[string]*structpb.Value{
					"workload": structpb.NewStringValue(w.GetId()),
					"version":  structpb.NewStringValue(w.GetVersion()),
				}},
			}},
		})
	}
	if len(lbs) > 0 {
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}
	}
	return cla
}

// rootCA is the trust bundle as an SDS validation context.
func (t *translation) rootCA() *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: xdsmeta.SecretRootCA,
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: t.in.TrustBundlePEM}},
		}},
	}
}
