package runtime

import (
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/filter"
	"github.com/weftmesh/weft/proxy/hcm"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/stats"
)

// listenerConfig is one compiled listener: where it binds and what its
// filter chains do with a connection.
type listenerConfig struct {
	name      string
	address   string // host:port as configured; port 0 binds any free port
	direction string
	// filterChain is the listener's only chain or, when plaintext is set,
	// its TLS chain.
	filterChain
	// plaintext, when set, serves the connections that do not start with a
	// TLS handshake (PERMISSIVE mTLS; see listener_chains.go).
	plaintext *filterChain
	// inspectTimeout bounds the wait for a connection's first byte; when it
	// passes, inspectContinue serves the connection as plaintext, else it
	// is closed.
	inspectTimeout  time.Duration
	inspectContinue bool
	// detect, when set, chooses the chain of each connection by what its
	// first bytes say (detect_chains.go); filterChain is then its first.
	detect *chainSelector
}

// bindKey identifies the socket a listener needs. Sockets are kept across
// updates by key, so a listener keeps its socket while its address stays.
func (l *listenerConfig) bindKey() string {
	if strings.HasSuffix(l.address, ":0") {
		return l.name + "|" + l.address
	}
	return l.address
}

func (b *builder) listeners() {
	byAddr := map[string]string{}
	for _, name := range sortedKeys(b.next.res.Listeners) {
		l := b.next.res.Listeners[name]
		if !b.check("listener", name, l.GetName(), l) {
			continue
		}
		lc, err := b.listener(l)
		if err != nil {
			b.fail("listener", name, err)
			continue
		}
		if other, dup := byAddr[lc.bindKey()]; dup {
			b.fail("listener", name, pathErr("address", "%s is also the address of listener %q", lc.address, other))
			continue
		}
		byAddr[lc.bindKey()] = name
		b.next.listeners[name] = lc
	}
}

func (b *builder) listener(l *listenerv3.Listener) (*listenerConfig, error) {
	addr, err := socketAddress(l.GetAddress(), "address", true)
	if err != nil {
		return nil, err
	}
	lc := &listenerConfig{name: l.GetName(), address: addr, direction: stats.Outbound}
	switch l.GetTrafficDirection() {
	case corev3.TrafficDirection_INBOUND:
		lc.direction = stats.Inbound
	case corev3.TrafficDirection_UNSPECIFIED:
		if lc.name == xdsmeta.InboundListener {
			lc.direction = stats.Inbound
		}
	}
	b.listenerName = lc.name
	if err := b.filterChains(l, lc); err != nil {
		return nil, err
	}
	return lc, nil
}

// meta is the filter chain's metadata, whose filter_metadata under a
// filter's name the filter reads (filter.Env.Metadata).
func (b *builder) connectionManager(h *hcmv3.HttpConnectionManager, direction, path string, meta *corev3.Metadata) (*hcm.ConnectionManager, error) {
	if c := h.GetCodecType(); c != hcmv3.HttpConnectionManager_AUTO {
		return nil, pathErr(join(path, "codec_type"), "%v is not supported (only AUTO)", c)
	}
	cfg := hcm.Config{
		RequestID: h.GetGenerateRequestId() == nil || h.GetGenerateRequestId().GetValue(),
		Direction: observe.Direction(direction),
		Listener:  b.listenerName,
		Local:     b.rt.opts.Workload,
		Log:       b.rt.log,
	}
	observers, err := b.httpObservers(h, direction, path)
	if err != nil {
		return nil, err
	}
	cfg.Observers = observers
	switch rs := h.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if err := checkConfigSource(rs.Rds.GetConfigSource(), join(path, "rds.config_source")); err != nil {
			return nil, err
		}
		cfg.RouteName = rs.Rds.GetRouteConfigName()
		if cfg.RouteName == "" {
			return nil, pathErr(join(path, "rds.route_config_name"), "a route configuration name is required")
		}
		// A RouteConfiguration that has not arrived yet is not an error:
		// requests are answered 404 until it does, as in Envoy.
		if rc, ok := b.next.res.Routes[cfg.RouteName]; ok {
			cfg.Routes = b.routeTable(rc, direction)
		}
	case *hcmv3.HttpConnectionManager_RouteConfig:
		t, err := route.Compile(rs.RouteConfig, b.resolver(direction))
		if err != nil {
			return nil, wrapPath(join(path, "route_config"), err)
		}
		cfg.Routes, cfg.RouteName = t, rs.RouteConfig.GetName()
	default:
		return nil, pathErr(path, "rds or route_config is required")
	}
	filters := h.GetHttpFilters()
	for i, f := range filters {
		fpath := fmt.Sprintf("%s.http_filters[%d]", path, i)
		if i == len(filters)-1 {
			if err := unpackAny(f.GetTypedConfig(), &routerv3.Router{}, join(fpath, "typed_config")); err != nil {
				return nil, err
			}
			continue
		}
		hf, err := httpFilter(f, fpath, filter.Env{Log: b.rt.log, ControlPlane: b.rt.opts.ControlPlane,
			Metadata: meta.GetFilterMetadata()[f.GetName()]})
		if err != nil {
			return nil, err
		}
		cfg.Filters = append(cfg.Filters, hf)
	}
	cfg.Retries = stats.RetriesOn(b.rt.opts.Metrics)
	for i, u := range h.GetUpgradeConfigs() {
		t := strings.ToLower(u.GetUpgradeType())
		if t != "websocket" {
			return nil, pathErr(fmt.Sprintf("%s.upgrade_configs[%d].upgrade_type", path, i), "upgrade %q is not supported (only websocket)", u.GetUpgradeType())
		}
		if cfg.Upgrades == nil {
			cfg.Upgrades = map[string]bool{}
		}
		cfg.Upgrades[t] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}
	return hcm.New(cfg), nil
}

// routeConfigs validates every RouteConfiguration, referenced or not. Tables for
// listeners are compiled per direction, as their metrics are.
func (b *builder) routeConfigs() {
	for _, name := range sortedKeys(b.next.res.Routes) {
		rc := b.next.res.Routes[name]
		if !b.check("route", name, rc.GetName(), rc) {
			continue
		}
		if _, err := route.Compile(rc, b.resolver(stats.Outbound)); err != nil {
			b.fail("route", name, err)
		}
	}
}

func (b *builder) routeTable(rc *routev3.RouteConfiguration, direction string) *route.Table[*hcm.Upstream] {
	key := [2]string{rc.GetName(), direction}
	if t, ok := b.routes[key]; ok {
		return t
	}
	t, err := route.Compile(rc, b.resolver(direction))
	if err != nil {
		return nil // reported by routeConfigs
	}
	b.routes[key] = t
	return t
}

func (b *builder) resolver(direction string) func(string) *hcm.Upstream {
	return func(name string) *hcm.Upstream { return b.upstream(direction, name) }
}

// upstream resolves a cluster reference. A cluster that is not configured
// resolves to an Upstream without a cluster: 503 at request time.
func (b *builder) upstream(direction, name string) *hcm.Upstream {
	key := [2]string{direction, name}
	if up, ok := b.upstreams[key]; ok {
		return up
	}
	up := &hcm.Upstream{Name: name}
	if svc, ns := stats.ClusterService(name); svc != stats.Unknown {
		up.Destination = observe.Peer{Service: svc, Namespace: ns}
	}
	if st, ok := b.next.clusters[name]; ok {
		up.Cluster = st.c
		up.MTLS = st.key.GetTransportSocket() != nil
	}
	b.upstreams[key] = up
	return up
}

func fullName(m proto.Message) string { return string(m.ProtoReflect().Descriptor().FullName()) }
