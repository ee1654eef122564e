package runtime

import (
	"crypto/tls"
	"fmt"
	"net"
	"sort"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/hcm"
	"github.com/weftmesh/weft/proxy/lb"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/tlsx"
	"github.com/weftmesh/weft/proxy/xdswire"
)

// snapshot is one immutable, validated configuration of the proxy.
type snapshot struct {
	res       Resources
	listeners map[string]*listenerConfig
	clusters  map[string]*clusterState
	bundles   map[string]*tlsx.TrustBundle
	// certs holds the TlsCertificate secrets (gateway_tls.go).
	certs map[string]*tls.Certificate
}

// clusterState is a compiled cluster and what its pool was built from.
type clusterState struct {
	c *cluster.Cluster
	// key is the resource: the pool is kept across updates while it stays
	// equal but for its endpoints (load_assignment).
	key *clusterv3.Cluster
	// kind is its discovery type, named only by the admin's dump: an
	// enum's String builds the descriptors of its whole .proto file.
	kind     clusterv3.Cluster_DiscoveryType
	balancer string
}

// builder compiles Resources into a snapshot, collecting every error.
type builder struct {
	rt        *Runtime
	prev      *snapshot
	next      *snapshot
	identity  tlsx.Identity
	endpoints map[string][]cluster.EndpointSpec
	upstreams map[[2]string]*hcm.Upstream
	routes    map[[2]string]*route.Table[*hcm.Upstream]
	errs      []error
	// listener is the name of the listener being compiled, for observers.
	listenerName string
}

func (b *builder) fail(kind, name string, err error) {
	b.errs = append(b.errs, fmt.Errorf("%s %q: %w", kind, name, err))
}

// check runs the field allowlist and Envoy's own field rules on a resource
// (proxy/xdswire).
func (b *builder) check(kind, key, name string, m proto.Message) bool {
	if !m.ProtoReflect().IsValid() {
		b.fail(kind, key, fmt.Errorf("resource is nil"))
		return false
	}
	if name != key {
		b.fail(kind, key, fmt.Errorf("resource is named %q", name))
		return false
	}
	if err := xdswire.Check(m); err != nil {
		b.fail(kind, key, err)
		return false
	}
	return true
}

func (b *builder) secrets() {
	for _, name := range sortedKeys(b.next.res.Secrets) {
		s := b.next.res.Secrets[name]
		if !b.check("secret", name, s.GetName(), s) {
			continue
		}
		if s.GetTlsCertificate() != nil {
			if err := b.certificateSecret(name, s); err != nil {
				b.fail("secret", name, err)
			}
			continue
		}
		vc := s.GetValidationContext()
		if vc == nil {
			b.fail("secret", name, pathErr("", "only validation contexts (trust bundles) are supported: the proxy's own SVID never travels over xDS"))
			continue
		}
		if len(vc.GetMatchTypedSubjectAltNames()) > 0 {
			b.fail("secret", name, pathErr("validation_context.match_typed_subject_alt_names", "SAN matchers belong in the TLS context, not in the trust bundle"))
			continue
		}
		var pemBytes []byte
		switch src := vc.GetTrustedCa().GetSpecifier().(type) {
		case *corev3.DataSource_InlineBytes:
			pemBytes = src.InlineBytes
		case *corev3.DataSource_InlineString:
			pemBytes = []byte(src.InlineString)
		default:
			b.fail("secret", name, pathErr("validation_context.trusted_ca", "inline PEM is required"))
			continue
		}
		bundle, err := tlsx.NewTrustBundle(pemBytes)
		if err != nil {
			b.fail("secret", name, pathErr("validation_context.trusted_ca", "%w", err))
			continue
		}
		b.next.bundles[name] = bundle
	}
}

// loadAssignments parses every ClusterLoadAssignment, used or not.
func (b *builder) loadAssignments() {
	for _, name := range sortedKeys(b.next.res.Endpoints) {
		cla := b.next.res.Endpoints[name]
		if !b.check("endpoints", name, cla.GetClusterName(), cla) {
			continue
		}
		specs, err := endpointSpecs(cla)
		if err != nil {
			b.fail("endpoints", name, err)
			continue
		}
		b.endpoints[name] = specs
	}
}

// endpointSpecs flattens a ClusterLoadAssignment. The balancers weigh every
// endpoint alike, so weights are accepted only when they are all the same.
func endpointSpecs(cla *endpointv3.ClusterLoadAssignment) ([]cluster.EndpointSpec, error) {
	var specs []cluster.EndpointSpec
	var locWeight, epWeight uint32
	sameWeight := func(w *wrapperspb.UInt32Value, seen *uint32, path string) error {
		if w == nil {
			return nil
		}
		if *seen != 0 && w.GetValue() != *seen {
			return pathErr(path, "unequal weights are not supported")
		}
		*seen = w.GetValue()
		return nil
	}
	for i, loc := range cla.GetEndpoints() {
		if err := sameWeight(loc.GetLoadBalancingWeight(), &locWeight, fmt.Sprintf("endpoints[%d].load_balancing_weight", i)); err != nil {
			return nil, err
		}
		for j, lbe := range loc.GetLbEndpoints() {
			path := fmt.Sprintf("endpoints[%d].lb_endpoints[%d]", i, j)
			if err := sameWeight(lbe.GetLoadBalancingWeight(), &epWeight, join(path, "load_balancing_weight")); err != nil {
				return nil, err
			}
			ep := lbe.GetEndpoint()
			if ep == nil {
				return nil, pathErr(path, "endpoint is required (named endpoints are not supported)")
			}
			addr, err := socketAddress(ep.GetAddress(), join(path, "endpoint.address"), false)
			if err != nil {
				return nil, err
			}
			md := lbe.GetMetadata().GetFilterMetadata()[xdsmeta.MetadataNamespace].GetFields()
			hs := lbe.GetHealthStatus()
			specs = append(specs, cluster.EndpointSpec{
				Address:  addr,
				Healthy:  hs == corev3.HealthStatus_UNKNOWN || hs == corev3.HealthStatus_HEALTHY,
				Workload: md["workload"].GetStringValue(),
				Version:  md["version"].GetStringValue(),
			})
		}
	}
	return specs, nil
}

func (b *builder) clusters() {
	for _, name := range sortedKeys(b.next.res.Clusters) {
		c := b.next.res.Clusters[name]
		if !b.check("cluster", name, c.GetName(), c) {
			continue
		}
		st, err := b.cluster(c)
		if err != nil {
			b.fail("cluster", name, err)
			continue
		}
		b.next.clusters[name] = st
	}
}

// lbPolicies maps lb_policy to registered balancer names.
var lbPolicies = map[clusterv3.Cluster_LbPolicy]string{
	clusterv3.Cluster_ROUND_ROBIN:   "round_robin",
	clusterv3.Cluster_LEAST_REQUEST: "least_request",
	clusterv3.Cluster_RING_HASH:     "ring_hash",
	clusterv3.Cluster_RANDOM:        "random",
	clusterv3.Cluster_MAGLEV:        "maglev",
}

const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

func (b *builder) cluster(c *clusterv3.Cluster) (*clusterState, error) {
	name := c.GetName()
	st := &clusterState{kind: c.GetType()}
	var specs []cluster.EndpointSpec
	switch c.GetType() {
	case clusterv3.Cluster_STATIC:
		if c.GetLoadAssignment() == nil {
			return nil, pathErr("load_assignment", "a STATIC cluster needs its endpoints")
		}
		var err error
		if specs, err = endpointSpecs(c.GetLoadAssignment()); err != nil {
			return nil, wrapPath("load_assignment", err)
		}
	case clusterv3.Cluster_EDS:
		if c.GetLoadAssignment() != nil {
			return nil, pathErr("load_assignment", "an EDS cluster gets its endpoints over EDS")
		}
		if err := checkConfigSource(c.GetEdsClusterConfig().GetEdsConfig(), "eds_cluster_config.eds_config"); err != nil {
			return nil, err
		}
		claName := name
		if sn := c.GetEdsClusterConfig().GetServiceName(); sn != "" {
			claName = sn
		}
		specs = b.endpoints[claName]
	case clusterv3.Cluster_ORIGINAL_DST:
		return b.originalDstCluster(c) // capture.go
	default:
		return nil, pathErr("type", "%v is not supported (only STATIC, EDS and ORIGINAL_DST)", c.GetType())
	}

	st.balancer = lbPolicies[c.GetLbPolicy()]
	balancer := lb.Get(st.balancer)
	if balancer == nil {
		return nil, pathErr("lb_policy", "%v is not supported (have %v)", c.GetLbPolicy(), lb.Names())
	}

	settings := cluster.Settings{Name: name, ConnectTimeout: c.GetConnectTimeout().AsDuration(), Log: b.rt.log}
	if ts := c.GetTransportSocket(); ts != nil {
		tlsConf, err := b.upstreamTLS(ts, "transport_socket")
		if err != nil {
			return nil, err
		}
		settings.TLS = tlsConf
	}
	for key, opts := range c.GetTypedExtensionProtocolOptions() {
		path := "typed_extension_protocol_options[" + strconv.Quote(key) + "]"
		if key != httpProtocolOptionsKey {
			return nil, pathErr(path, "%s is not supported", key)
		}
		hpo := &httpv3.HttpProtocolOptions{}
		if err := unpackAny(opts, hpo, path); err != nil {
			return nil, err
		}
		explicit := hpo.GetExplicitHttpConfig()
		downstream := hpo.GetUseDownstreamProtocolConfig()
		switch {
		case explicit.GetHttp2ProtocolOptions() != nil:
			settings.Protocol = cluster.HTTP2
		case explicit.GetHttpProtocolOptions() != nil:
			settings.Protocol = cluster.HTTP1
		case downstream != nil:
			if downstream.GetHttpProtocolOptions() == nil || downstream.GetHttp2ProtocolOptions() == nil {
				return nil, pathErr(join(path, "use_downstream_protocol_config"), "http_protocol_options and http2_protocol_options are both required")
			}
			settings.Protocol = cluster.Downstream
		default:
			return nil, pathErr(path, "explicit_http_config or use_downstream_protocol_config is required")
		}
		if d := hpo.GetCommonHttpProtocolOptions().GetIdleTimeout(); d != nil {
			settings.IdleTimeout = d.AsDuration()
		}
	}

	limits, maxConns, err := circuitBreakers(c.GetCircuitBreakers())
	if err != nil {
		return nil, err
	}
	settings.MaxConnections = maxConns
	if od := c.GetOutlierDetection(); od != nil {
		o, err := outlierDetection(od)
		if err != nil {
			return nil, err
		}
		o.OnEject = b.rt.metrics.OutlierEjection(name)
		settings.Outlier = o
	}

	if hcs := c.GetHealthChecks(); len(hcs) > 0 {
		hc, err := healthCheck(name, hcs)
		if err != nil {
			return nil, err
		}
		settings.HealthCheck = hc
	}

	balancer, err = configureBalancer(c, balancer)
	if err != nil {
		return nil, err
	}

	st.key = c
	var pool *cluster.Pool
	if old, ok := b.prev.clusters[name]; ok && xdswire.EqualExcept(old.key, c, "load_assignment") {
		pool = old.c.Pool()
	} else {
		pool = cluster.NewPool(settings)
	}
	st.c = cluster.Build(cluster.Config{
		Name: name, Pool: pool, Balancer: balancer, Endpoints: specs,
		Thresholds: limits, OnOverflow: b.rt.metrics.Overflow(name),
	})
	return st, nil
}

// socketAddress returns host:port of an IP socket address. Only a listener
// may ask for port 0 (any free port).
func socketAddress(a *corev3.Address, path string, listener bool) (string, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return "", pathErr(path, "a socket_address is required")
	}
	path = join(path, "socket_address")
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return "", pathErr(join(path, "protocol"), "%v is not supported (only TCP)", sa.GetProtocol())
	}
	ip := net.ParseIP(sa.GetAddress())
	if ip == nil {
		return "", pathErr(join(path, "address"), "%q is not an IP address", sa.GetAddress())
	}
	port := sa.GetPortValue()
	if port > 65535 || port == 0 && !listener {
		return "", pathErr(join(path, "port_value"), "%d is not a valid port", port)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port))), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
