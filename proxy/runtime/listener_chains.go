package runtime

import (
	"crypto/tls"
	"fmt"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/proxy/filter/rbac"
	"github.com/weftmesh/weft/proxy/hcm"
	"github.com/weftmesh/weft/proxy/tcp"
	"github.com/weftmesh/weft/proxy/xdswire"
)

// A listener has one filter chain or, for PERMISSIVE mTLS as Istio builds
// it, two told apart by the transport protocol that the tls_inspector
// listener filter detects: "tls" (a connection that starts with a TLS
// handshake record) and "raw_buffer" (any other). A chain runs network
// RBAC filters on the connection, then an HttpConnectionManager or a
// TcpProxy.

// Transport protocols of filter_chain_match.
const (
	transportTLS = "tls"
	transportRaw = "raw_buffer"
)

// defaultInspectTimeout is Envoy's listener_filters_timeout default.
const defaultInspectTimeout = 15 * time.Second

// filterChain is one compiled filter chain.
type filterChain struct {
	name string
	tls  *tls.Config // nil: plaintext
	// rbac are the network RBAC filters before http or tcp, in order.
	rbac []*rbac.Engine
	http *hcm.ConnectionManager
	tcp  *tcp.Proxy
	// permissive marks the plaintext chain of a listener that also
	// terminates mTLS.
	permissive bool
	// passthrough marks a chain whose TcpProxy connects each connection to
	// its original destination (capture.go).
	passthrough bool
}

// filterChains compiles the listener's filter chains into lc.
func (b *builder) filterChains(l *listenerv3.Listener, lc *listenerConfig) error {
	in, err := listenerFilters(l)
	if err != nil {
		return err
	}
	if capturesConnections(l) {
		// Chains chosen by original destination (capture.go).
		return b.captureChains(l, lc, in)
	}
	if usesDetection(l, in) {
		// Chains chosen by protocol detection (detect_chains.go).
		return b.detectChains(l, lc, in)
	}
	inspector := in.tls
	chains := l.GetFilterChains()
	switch n := len(chains); {
	case n == 0:
		return pathErr("filter_chains", "a filter chain is required")
	case n > 2:
		return pathErr("filter_chains[2]", "at most two filter chains are supported: one for tls and one for raw_buffer")
	}
	compiled := make([]*filterChain, len(chains))
	for i, fc := range chains {
		path := fmt.Sprintf("filter_chains[%d]", i)
		c, err := b.filterChain(fc, lc.direction, path)
		if err != nil {
			return err
		}
		switch proto := fc.GetFilterChainMatch().GetTransportProtocol(); {
		case proto == "" && len(chains) == 1:
		case proto == transportTLS && c.tls != nil, proto == transportRaw && c.tls == nil:
		case proto == transportTLS || proto == transportRaw:
			return pathErr(path+".filter_chain_match.transport_protocol", "%q does not fit the chain's transport socket", proto)
		case proto == "":
			return pathErr(path+".filter_chain_match.transport_protocol", "is required to tell two filter chains apart")
		default:
			return pathErr(path+".filter_chain_match.transport_protocol", "%q is not supported (tls or raw_buffer)", proto)
		}
		compiled[i] = c
	}
	lc.filterChain = *compiled[0]
	if len(chains) == 1 {
		return nil
	}
	if !inspector {
		return pathErr("listener_filters", "an envoy.filters.listener.tls_inspector is required to choose between two filter chains")
	}
	if (compiled[0].tls == nil) == (compiled[1].tls == nil) {
		return pathErr("filter_chains[1].filter_chain_match.transport_protocol", "two chains must be one tls and one raw_buffer")
	}
	tlsChain, raw := compiled[0], compiled[1]
	if tlsChain.tls == nil {
		tlsChain, raw = raw, tlsChain
	}
	raw.permissive = true
	lc.filterChain, lc.plaintext = *tlsChain, raw
	lc.inspectTimeout = defaultInspectTimeout
	if t := l.GetListenerFiltersTimeout(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() < 0 {
			return pathErr("listener_filters_timeout", "invalid duration")
		}
		lc.inspectTimeout = t.AsDuration()
	}
	lc.inspectContinue = l.GetContinueOnListenerFiltersTimeout()
	return nil
}

// filterChain compiles one filter chain: network RBAC filters, then one
// HttpConnectionManager or TcpProxy.
func (b *builder) filterChain(fc *listenerv3.FilterChain, direction, path string) (*filterChain, error) {
	c := &filterChain{name: fc.GetName()}
	if ts := fc.GetTransportSocket(); ts != nil {
		var err error
		if c.tls, err = b.downstreamTLS(ts, path+".transport_socket"); err != nil {
			return nil, err
		}
	}
	filters := fc.GetFilters()
	if len(filters) == 0 {
		return nil, pathErr(path+".filters", "a network filter is required")
	}
	for i, f := range filters {
		fPath := fmt.Sprintf("%s.filters[%d].typed_config", path, i)
		a := f.GetTypedConfig()
		last := i == len(filters)-1
		httpConf, tcpConf, rbacConf := &hcmv3.HttpConnectionManager{}, &tcpproxyv3.TcpProxy{}, &rbacnetworkv3.RBAC{}
		switch {
		case a.MessageIs(rbacConf) && !last:
			if err := unpackAny(a, rbacConf, fPath); err != nil {
				return nil, err
			}
			if rbacConf.GetRules() == nil {
				return nil, pathErr(fPath+"("+fullName(rbacConf)+").rules", "are required")
			}
			e, err := rbac.Compile(rbacConf.GetRules(), true)
			if err != nil {
				return nil, pathErr(fPath+"("+fullName(rbacConf)+")", "rules.%v", err)
			}
			c.rbac = append(c.rbac, e)
		case !last && (a.MessageIs(httpConf) || a.MessageIs(tcpConf)):
			return nil, pathErr(fmt.Sprintf("%s.filters[%d]", path, i+1), "an HttpConnectionManager or TcpProxy must be the last network filter")
		case a.MessageIs(httpConf):
			if err := unpackAny(a, httpConf, fPath); err != nil {
				return nil, err
			}
			var err error
			c.http, err = b.connectionManager(httpConf, direction, fPath+"("+fullName(httpConf)+")", fc.GetMetadata())
			if err != nil {
				return nil, err
			}
		case a.MessageIs(tcpConf):
			if err := unpackAny(a, tcpConf, fPath); err != nil {
				return nil, err
			}
			var err error
			c.tcp, err = b.tcpProxy(tcpConf, direction, fPath+"("+fullName(tcpConf)+")")
			if err != nil {
				return nil, err
			}
		case last:
			return nil, pathErr(fPath, "%s is not valid here (want HttpConnectionManager or TcpProxy)", xdswire.TypeName(a))
		default:
			return nil, pathErr(fPath, "%s is not valid here (want envoy.filters.network.rbac before the last filter)", xdswire.TypeName(a))
		}
	}
	return c, nil
}

// chainFor returns the chain that serves requests of a connection that is
// TLS or not, or nil when none does: after a switch to STRICT, a plaintext
// connection opened before it gets no more requests through.
func (lc *listenerConfig) chainFor(overTLS bool) *filterChain {
	if lc.plaintext != nil && !overTLS {
		return lc.plaintext
	}
	if (lc.filterChain.tls != nil) != overTLS {
		return nil
	}
	return &lc.filterChain
}
