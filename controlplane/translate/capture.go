package translate

import (
	"fmt"
	"net/netip"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// Transparent mode (node metadata mode: transparent). iptables sends the
// pod's outbound TCP to the outbound capture listener and its inbound TCP to
// the inbound listener, bound on the capture ports:
//   - outbound_capture on 127.0.0.1:15001, use_original_dst: chains match
//     where the app was connecting; one filter chain per mesh
//     service VIP and port (an HCM with the service's own RDS route, or a
//     TcpProxy), exactly what an --upstream port of that service gets; the
//     default_filter_chain sends anything else to PassthroughCluster
//     (ORIGINAL_DST). It is a default chain, not a match-all chain: Envoy
//     matches the port before the address, so a match-all chain would lose
//     every connection to a port some VIP uses.
//     The listener's metadata carries the VIP table (xdsmeta/vip.go).
//   - inbound on 0.0.0.0:15006: the explicit inbound listener unchanged
//     (mTLS, the service's policies), only bound elsewhere. Peers reach it at
//     the workload's registered address, <pod IP>:<app port>, which the
//     pod's iptables redirect.

// passthroughConnectTimeout bounds a connection to a destination outside the mesh.
const passthroughConnectTimeout = 10 * time.Second

// vipOf is a service's virtual IP: the one its spec declares, else the one
// the control plane allocated; ok is false when it has neither (yet).
func (in *Input) vipOf(key ServiceKey) (netip.Addr, bool) {
	if s := in.Services[key]; s != nil && s.VIP != "" {
		ip, err := netip.ParseAddr(s.VIP)
		return ip, err == nil && ip.Is4()
	}
	ip, ok := in.VIPs[key]
	return ip, ok
}

// transparent reports whether the proxy's traffic is captured by iptables.
func (t *translation) transparent() bool { return t.node.Mode == xdsmeta.ModeTransparent }

// inboundListenAddress is where the inbound listener binds: the inbound
// capture port in transparent mode, else the node's inbound address.
func (t *translation) inboundListenAddress() string {
	if t.transparent() {
		return xdsmeta.InboundCaptureAddress
	}
	return t.node.Inbound
}

// outboundCapture builds the outbound capture listener and its passthrough
// cluster; reachable lists the services it has chains for, routed those of
// them that are HTTP (they need their RouteConfiguration).
func (t *translation) outboundCapture() (l *listenerv3.Listener, passthrough *clusterv3.Cluster, reachable, routed []ServiceKey, err error) {
	addr, err := socketAddress(xdsmeta.OutboundCaptureAddress)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("outbound capture address: %w", err)
	}
	table := xdsmeta.VIPTable{}
	var chains []*listenerv3.FilterChain
	taken := map[netip.AddrPort]bool{}
	for _, key := range t.in.knownServices() {
		ip, ok := t.in.vipOf(key)
		spec := t.in.Services[key]
		if !ok || spec == nil {
			continue
		}
		var filter *listenerv3.Filter
		name := xdsmeta.OutboundCluster(key.Name, key.Namespace)
		http := t.in.protocol(key).IsHTTP()
		if http {
			filter = t.httpConnectionManager(name, t.rds(xdsmeta.OutboundRoute(key.Name, key.Namespace)), t.outboundHTTPFilters(t.in.hasFault(key)))
		} else {
			proxy := t.tcpRouteProxy(name, key)
			proxy.AccessLog = t.accessLogs(name, false)
			filter = &listenerv3.Filter{Name: filterTCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.any(proxy)}}
		}
		added := false
		for _, p := range spec.Ports {
			ap := netip.AddrPortFrom(ip, uint16(p.Port))
			if taken[ap] {
				// Two Services declaring one VIP: the first by name keeps it.
				continue
			}
			taken[ap], added = true, true
			chains = append(chains, &listenerv3.FilterChain{
				Name: fmt.Sprintf("%s|%s", name, ap),
				FilterChainMatch: &listenerv3.FilterChainMatch{
					PrefixRanges:    []*corev3.CidrRange{{AddressPrefix: ip.String(), PrefixLen: wrapperspb.UInt32(32)}},
					DestinationPort: wrapperspb.UInt32(uint32(p.Port)),
				},
				Filters: []*listenerv3.Filter{filter},
			})
		}
		if !added {
			continue
		}
		table[xdsmeta.ServiceHost(key.Name, key.Namespace)] = ip
		reachable = append(reachable, key)
		if http {
			routed = append(routed, key)
		}
	}
	l = &listenerv3.Listener{
		Name:             xdsmeta.OutboundCaptureListener,
		Address:          addr,
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		// As Istio's virtualOutbound: Envoy then restores the original
		// destination (the original_dst listener filter) before matching.
		UseOriginalDst:     wrapperspb.Bool(true),
		FilterChains:       chains,
		DefaultFilterChain: t.passthroughChain(),
		Metadata:           table.Metadata(),
	}
	passthrough = &clusterv3.Cluster{
		Name:                 xdsmeta.PassthroughCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(passthroughConnectTimeout),
	}
	return l, passthrough, reachable, routed, nil
}

// passthroughChain serves connections to destinations outside the mesh:
// they go where the app was sending them (outbound policy ALLOW_ANY).
func (t *translation) passthroughChain() *listenerv3.FilterChain {
	var filters []*listenerv3.Filter
	if t.in.Mesh.OutboundMode() == v1alpha1.OutboundRegistryOnly {
		// REGISTRY_ONLY: a destination that is no mesh service is refused
		// before the TCP proxy, by the same network RBAC that enforces
		// AccessPolicies, so the refusal is logged and access-logged with
		// its reason. (HTTP through the HTTP proxy port answers 502
		// egress_denied instead: see egress.go.)
		filters = append(filters, &listenerv3.Filter{
			Name: filterRBACNetwork,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.any(&rbacnetworkv3.RBAC{
				StatPrefix: xdsmeta.PassthroughCluster + ".",
				Rules: &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_DENY, Policies: map[string]*rbacconfigv3.Policy{
					egressDeniedPolicy: {
						Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Any{Any: true}}},
						Principals:  []*rbacconfigv3.Principal{{Identifier: &rbacconfigv3.Principal_Any{Any: true}}},
					},
				}},
			})},
		})
	}
	filters = append(filters, &listenerv3.Filter{
		Name: filterTCPProxy,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.any(&tcpproxyv3.TcpProxy{
			StatPrefix:       xdsmeta.PassthroughCluster,
			ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: xdsmeta.PassthroughCluster},
			AccessLog:        t.accessLogs(xdsmeta.PassthroughCluster, false),
		})},
	})
	return &listenerv3.FilterChain{Name: xdsmeta.PassthroughCluster, Filters: filters}
}

// egressDeniedPolicy names the refusal of a captured connection to a
// destination outside the registry (REGISTRY_ONLY) in logs.
const egressDeniedPolicy = "egress_denied: not a mesh service or ExternalService (outboundTrafficPolicy REGISTRY_ONLY)"
