package runtime

import (
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/internal/ratelog"
	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/hcm"
	"github.com/weftmesh/weft/proxy/lb"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/stats"
	"github.com/weftmesh/weft/proxy/xdswire"
)

// Transparent capture (the translator's capture.go): the outbound capture
// listener has use_original_dst, chains matched on the original destination
// (the chain selector of detect_chains.go) and a default_filter_chain for
// every other destination. A chain that is one TcpProxy to an ORIGINAL_DST
// cluster (the default chain, a TLS chain chosen by SNI) connects the
// connection where the app sent it (passthrough). An HCM route to an
// ORIGINAL_DST cluster sends each request to its connection's original
// destination: the chain selector hands it to the requests with the
// connection (detectedConn), and the cluster picks it (cluster.PickFor).

// defaultChainName names the default filter chain when it has no name of its own.
const defaultChainName = "default_filter_chain"

// defaultPassthroughTimeout bounds a passthrough connect when the cluster
// sets no connect_timeout.
const defaultPassthroughTimeout = 10 * time.Second

// capturesConnections reports whether a listener receives redirected
// connections or has a default chain: both need the chain selector.
func capturesConnections(l *listenerv3.Listener) bool {
	return l.GetUseOriginalDst().GetValue() || l.GetDefaultFilterChain() != nil
}

// captureChains compiles a listener that chooses chains by original
// destination, with an optional default chain.
func (b *builder) captureChains(l *listenerv3.Listener, lc *listenerConfig, in inspectors) error {
	if err := captureMetadata(l); err != nil {
		return err
	}
	if len(l.GetFilterChains()) > 0 {
		if err := b.detectChains(l, lc, in); err != nil {
			return err
		}
	} else {
		if l.GetDefaultFilterChain() == nil {
			return pathErr("filter_chains", "a filter chain or a default_filter_chain is required")
		}
		// No chain but the default one: nothing to tell apart.
		lc.detect = &chainSelector{listener: l.GetName(), in: in, timeout: defaultInspectTimeout,
			originalDst: l.GetUseOriginalDst().GetValue(),
			fallbacks:   detectFallbacks(b.rt.opts.Metrics).MustCurryWith(prometheus.Labels{"listener": l.GetName()}),
			log:         ratelog.New(b.rt.log, slog.LevelWarn, 5, 10*time.Second)}
	}
	cs := lc.detect
	dfc := l.GetDefaultFilterChain()
	if dfc == nil {
		return nil
	}
	if dfc.GetFilterChainMatch() != nil {
		return pathErr("default_filter_chain.filter_chain_match", "a default filter chain matches what no other chain does: it has no match of its own")
	}
	c, err := b.filterChain(dfc, lc.direction, "default_filter_chain")
	if err != nil {
		return err
	}
	if c.name == "" {
		c.name = defaultChainName
	}
	if cs.chainNamed(c.name) != nil {
		return pathErr("default_filter_chain.name", "%q is also the name of a filter chain", c.name)
	}
	if err := b.passthroughChain(dfc, c, cs.originalDst, "default_filter_chain"); err != nil {
		return err
	}
	cs.defaultChain = c
	if len(cs.chains) == 0 {
		lc.filterChain = *c
	}
	return nil
}

// passthroughChain marks c, compiled from fc, as a passthrough chain when
// it is one TcpProxy to an ORIGINAL_DST cluster, and checks that it can be
// one.
func (b *builder) passthroughChain(fc *listenerv3.FilterChain, c *filterChain, originalDst bool, path string) error {
	if c.passthrough = b.originalDstChain(fc); !c.passthrough {
		return nil
	}
	switch {
	case !originalDst:
		// It would connect to the listener itself.
		return pathErr(path, "a TcpProxy to an ORIGINAL_DST cluster needs use_original_dst on the listener")
	case c.tls != nil || len(c.rbac) > 0:
		return pathErr(path, "a passthrough chain has no transport socket or RBAC filter")
	}
	return nil
}

// captureMetadata checks the tables a capture listener carries for the
// sidecar's DNS resolver (xdsmeta.VIPTable, xdsmeta.ExternalHostTable):
// the resolver reads them on every query, so a malformed one is refused
// here, with the rest of the listener.
func captureMetadata(l *listenerv3.Listener) error {
	if _, err := xdsmeta.VIPTableFromListener(l); err != nil {
		return pathErr("metadata.filter_metadata["+strconv.Quote(xdsmeta.VIPMetadataNamespace)+"]", "%v", err)
	}
	if _, err := xdsmeta.ExternalHostTableFromListener(l); err != nil {
		return pathErr("metadata.filter_metadata["+strconv.Quote(xdsmeta.ExternalHostsMetadataNamespace)+"]", "%v", err)
	}
	return nil
}

// originalDstChain reports whether a chain is one TcpProxy to an
// ORIGINAL_DST cluster.
func (b *builder) originalDstChain(fc *listenerv3.FilterChain) bool {
	fs := fc.GetFilters()
	if len(fs) != 1 {
		return false
	}
	tp := &tcpproxyv3.TcpProxy{}
	if !fs[0].GetTypedConfig().MessageIs(tp) || xdswire.UnmarshalAny(fs[0].GetTypedConfig(), tp) != nil {
		return false
	}
	return b.next.res.Clusters[tp.GetCluster()].GetType() == clusterv3.Cluster_ORIGINAL_DST
}

// originalDstCluster compiles an ORIGINAL_DST cluster. It has no endpoints
// of its own: a chain whose TcpProxy names it connects to each connection's
// original destination (servePassthrough), and a route to it sends each
// request to its connection's original destination, in the protocol the
// request came in (HTTP/1.1 or h2c), as Envoy does. A request whose
// connection has none (it was not redirected) finds no endpoint: 503,
// never a connection to the listener itself. Such requests are counted
// with destination_service set to the cluster's name, as Istio counts
// PassthroughCluster: they reach no mesh service, and their destinations
// are too many for a label.
func (b *builder) originalDstCluster(c *clusterv3.Cluster) (*clusterState, error) {
	switch {
	case c.GetLbPolicy() != clusterv3.Cluster_CLUSTER_PROVIDED:
		return nil, pathErr("lb_policy", "an ORIGINAL_DST cluster needs CLUSTER_PROVIDED, not %v", c.GetLbPolicy())
	case c.GetLoadAssignment() != nil:
		return nil, pathErr("load_assignment", "an ORIGINAL_DST cluster has no endpoints of its own")
	case c.GetTransportSocket() != nil:
		return nil, pathErr("transport_socket", "is not supported on an ORIGINAL_DST cluster (destinations outside the mesh)")
	case len(c.GetTypedExtensionProtocolOptions()) > 0:
		return nil, pathErr("typed_extension_protocol_options", "are not supported on an ORIGINAL_DST cluster (it forwards bytes)")
	case c.GetEdsClusterConfig() != nil:
		return nil, pathErr("eds_cluster_config", "does not fit an ORIGINAL_DST cluster")
	}
	if err := c.GetConnectTimeout().CheckValid(); c.GetConnectTimeout() != nil && err != nil {
		return nil, pathErr("connect_timeout", "invalid duration")
	}
	name := c.GetName()
	st := &clusterState{kind: c.GetType(), balancer: "cluster_provided"}
	st.key = c
	var pool *cluster.Pool
	if old, ok := b.prev.clusters[name]; ok && xdswire.Equal(old.key, c) {
		pool = old.c.Pool()
	} else {
		timeout := c.GetConnectTimeout().AsDuration()
		if timeout <= 0 {
			timeout = defaultPassthroughTimeout
		}
		pool = cluster.NewPool(cluster.Settings{Name: name, ConnectTimeout: timeout, Protocol: cluster.Downstream, Log: b.rt.log})
	}
	st.c = cluster.Build(cluster.Config{Name: name, Pool: pool, Balancer: lb.Get("round_robin"), OriginalDst: true})
	for _, direction := range []string{stats.Outbound, stats.Inbound} {
		b.upstreams[[2]string{direction, name}] = &hcm.Upstream{Name: name, Cluster: st.c, Destination: observe.Peer{Service: name}}
	}
	return st, nil
}

// servePassthrough serves c with its chain's TcpProxy to the ORIGINAL_DST
// cluster, which connects to dst, where the app was sending it; the
// connection is counted and access-logged as any TCP proxy's is, with
// destination PassthroughCluster. It runs on the goroutine that chose the
// chain.
func (s *socket) servePassthrough(fc *filterChain, c net.Conn, dst netip.AddrPort) {
	if !redirected(c, dst) {
		// Not redirected (someone connected to the capture port itself):
		// passing it through would connect the listener to itself.
		s.rt.log.Debug("passthrough: connection was not redirected: closed", "remote", c.RemoteAddr().String(), "local", c.LocalAddr().String())
		c.Close()
		return
	}
	done, ok := s.sessions.Add(c)
	if !ok {
		c.Close()
		return
	}
	defer done()
	s.active.Inc()
	defer s.active.Dec()
	fc.tcp.Serve(cluster.WithOriginalDestination(s.ctx, dst), c)
}

// redirected reports whether dst, where connection c was going, is an
// original destination other than the listener's own address.
func redirected(c net.Conn, dst netip.AddrPort) bool {
	la, ok := c.LocalAddr().(*net.TCPAddr)
	return ok && dst.IsValid() && la.AddrPort() != dst
}
