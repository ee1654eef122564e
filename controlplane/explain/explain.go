// Package explain answers "what would the mesh do with this request?" from
// the configuration the control plane serves now. It translates the xDS of
// a proxy of the calling service and of one of the destination, then runs
// the proxy's own code on them: route matching and weighted splits on the
// caller's side, the inbound filter chain (authentication, authorisation,
// rate limits) on the destination's. What it says is therefore what a
// proxy would do, not a second reading of the resources that could drift
// from it.
package explain

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
	"github.com/weftmesh/weft/proxy/filter"
	"github.com/weftmesh/weft/proxy/filter/rbac"
	"github.com/weftmesh/weft/proxy/route"
)

// Request is the request to explain.
type Request struct {
	From, To translate.ServiceKey
	Method   string
	Path     string
	Header   http.Header
}

// ErrUnknownService is wrapped when From or To names no service the mesh
// knows (no Service resource and no registered workload).
var ErrUnknownService = errors.New("unknown service")

// Explain works out what the mesh does with req under in.
func Explain(in *translate.Input, req Request) (*client.Explanation, error) {
	if in == nil {
		return nil, errors.New("explain: the control plane has no configuration yet")
	}
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	if req.Path == "" {
		req.Path = "/"
	}
	if !strings.HasPrefix(req.Path, "/") {
		return nil, fmt.Errorf("explain: path %q: must start with /", req.Path)
	}
	for _, k := range []translate.ServiceKey{req.From, req.To} {
		if !known(in, k) {
			return nil, fmt.Errorf("explain: %w %s.%s: no Service resource and no registered workload", ErrUnknownService, k.Name, k.Namespace)
		}
	}
	e := &client.Explanation{
		From: xdsmeta.ServiceHost(req.From.Name, req.From.Namespace),
		To:   xdsmeta.ServiceHost(req.To.Name, req.To.Namespace),
	}
	caller, err := translate.ForNode(in, callerNode(req))
	if err != nil {
		return nil, fmt.Errorf("explain: the caller's configuration: %w", err)
	}
	l := find[*listenerv3.Listener](caller, resource.ListenerType, xdsmeta.OutboundListener(callerUpstream(req).String()))
	if l == nil || len(l.GetFilterChains()) == 0 || len(l.GetFilterChains()[0].GetFilters()) == 0 {
		return nil, fmt.Errorf("explain: the caller's proxy has no listener for %s", e.To)
	}
	nf := l.GetFilterChains()[0].GetFilters()[0]
	var h hcmv3.HttpConnectionManager
	if nf.GetTypedConfig().MessageIs(&h) {
		e.Protocol = "http"
		e.Method, e.Path = req.Method, req.Path
		if err := nf.GetTypedConfig().UnmarshalTo(&h); err != nil {
			return nil, fmt.Errorf("explain: the caller's listener: %w", err)
		}
		if !explainRoute(e, caller, &h, req) {
			return e, nil
		}
	} else {
		e.Protocol = "tcp"
		var tp tcpproxyv3.TcpProxy
		if err := nf.GetTypedConfig().UnmarshalTo(&tp); err != nil {
			return nil, fmt.Errorf("explain: the caller's listener: %w", err)
		}
		explainTCP(e, caller, &tp)
	}

	dest, err := translate.ForNode(in, destinationNode(req))
	if err != nil {
		return nil, fmt.Errorf("explain: the destination's configuration: %w", err)
	}
	if e.Protocol == "http" {
		if err := explainInbound(e, in, dest, req); err != nil {
			return nil, err
		}
	} else if err := explainInboundTCP(e, in, dest, req); err != nil {
		return nil, err
	}
	return e, nil
}

func known(in *translate.Input, k translate.ServiceKey) bool {
	_, svc := in.Services[k]
	return svc || len(in.Workloads[k]) > 0
}

// Addresses of the synthetic proxies: translation needs them, nothing binds them.
const (
	callerInbound = "127.0.0.1:1"
	callerApp     = "127.0.0.1:2"
	callerListen  = "127.0.0.1:3"
)

func callerUpstream(req Request) xdsmeta.Upstream {
	return xdsmeta.Upstream{Service: req.To.Name, Namespace: req.To.Namespace, Listen: callerListen}
}

// callerNode is a proxy of the calling service with one upstream: the
// destination.
func callerNode(req Request) xdsmeta.Node {
	return xdsmeta.Node{
		ID:      "explain~" + req.From.Namespace + "~" + req.From.Name,
		Service: req.From.Name, Namespace: req.From.Namespace,
		Inbound: callerInbound, App: callerApp,
		Upstreams: []xdsmeta.Upstream{callerUpstream(req)},
	}
}

// destinationNode is a proxy of the destination service.
func destinationNode(req Request) xdsmeta.Node {
	return xdsmeta.Node{
		ID:      "explain~" + req.To.Namespace + "~" + req.To.Name,
		Service: req.To.Name, Namespace: req.To.Namespace,
		Inbound: callerInbound, App: callerApp,
	}
}

// find returns the resource of type typ named name, or the zero value.
func find[T interface{ GetName() string }](r *translate.Resources, typ, name string) T {
	for _, res := range r.ByType()[typ] {
		if t, ok := res.(T); ok && t.GetName() == name {
			return t
		}
	}
	var zero T
	return zero
}

// explainRoute matches the request on the caller's routes; it reports
// whether the request goes on to a backend.
func explainRoute(e *client.Explanation, caller *translate.Resources, h *hcmv3.HttpConnectionManager, req Request) bool {
	name := h.GetRds().GetRouteConfigName()
	rc := h.GetRouteConfig()
	if rc == nil {
		rc = find[*routev3.RouteConfiguration](caller, resource.RouteType, name)
	}
	if rc == nil {
		e.Verdict = fmt.Sprintf("refused: 404, the caller's proxy has no route configuration %q", name)
		return false
	}
	table, err := route.Compile(rc, func(c string) string { return c })
	if err != nil {
		e.Verdict = "refused: the caller's proxy would reject its routes: " + err.Error()
		return false
	}
	rt := table.MatchRequest(&route.Request{Host: e.To, Path: req.Path, Method: req.Method, Scheme: "http", Header: req.Header})
	if rt == nil {
		e.Verdict = "refused: 404, no route rule matches " + req.Method + " " + req.Path
		return false
	}
	r := &client.ExplainedRoute{Name: rt.Name, Source: "rule " + rt.Name + " of the Route of " + e.To}
	if rt.Name == translate.DefaultRouteName {
		r.Source = "the default route of " + e.To
	}
	if rt.Timeout > 0 {
		r.Timeout = rt.Timeout.String()
	}
	if p := rt.Retry; p != nil && p.NumRetries > 0 {
		r.Retries = fmt.Sprintf("up to %d on %s", p.NumRetries, p.On)
		if p.PerTry > 0 {
			r.Retries += fmt.Sprintf(", %s per try", p.PerTry)
		}
	}
	for _, m := range rt.Mirrors {
		r.Mirrors = append(r.Mirrors, fmt.Sprintf("%s (%d/%d)", m.Cluster, m.Share.Numerator, m.Share.Denominator))
	}
	for f := range rt.PerFilter {
		r.Filters = append(r.Filters, f)
	}
	slices.Sort(r.Filters)
	e.Route = r
	if len(rt.Backends) == 0 {
		e.Backends = []client.ExplainedBackend{{Cluster: rt.Cluster, Weight: 1, Percent: 100}}
	} else {
		var total uint64
		for _, b := range rt.Backends {
			total += b.Weight
		}
		for _, b := range rt.Backends {
			e.Backends = append(e.Backends, client.ExplainedBackend{Cluster: b.Cluster, Weight: b.Weight, Percent: 100 * float64(b.Weight) / float64(total)})
		}
	}
	addEndpoints(e, caller)
	return true
}

func explainTCP(e *client.Explanation, caller *translate.Resources, tp *tcpproxyv3.TcpProxy) {
	if c := tp.GetCluster(); c != "" {
		e.Backends = []client.ExplainedBackend{{Cluster: c, Weight: 1, Percent: 100}}
	} else {
		var total uint64
		for _, c := range tp.GetWeightedClusters().GetClusters() {
			total += uint64(c.GetWeight())
		}
		for _, c := range tp.GetWeightedClusters().GetClusters() {
			if c.GetWeight() == 0 || total == 0 {
				continue
			}
			e.Backends = append(e.Backends, client.ExplainedBackend{Cluster: c.GetName(), Weight: uint64(c.GetWeight()),
				Percent: 100 * float64(c.GetWeight()) / float64(total)})
		}
	}
	addEndpoints(e, caller)
}

// addEndpoints fills in each backend's endpoints from the caller's EDS.
func addEndpoints(e *client.Explanation, caller *translate.Resources) {
	for i := range e.Backends {
		b := &e.Backends[i]
		b.Endpoints = []string{}
		var cla *endpointv3.ClusterLoadAssignment
		for _, res := range caller.ByType()[resource.EndpointType] {
			if c, ok := res.(*endpointv3.ClusterLoadAssignment); ok && c.GetClusterName() == b.Cluster {
				cla = c
			}
		}
		for _, loc := range cla.GetEndpoints() {
			for _, ep := range loc.GetLbEndpoints() {
				sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
				b.Endpoints = append(b.Endpoints, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
			}
		}
		if len(b.Endpoints) == 0 {
			e.Notes = append(e.Notes, fmt.Sprintf("%s has no ready endpoint: requests to it get 503 no healthy upstream", b.Cluster))
		}
	}
}

// explainInbound runs the destination's inbound HTTP filters on the request
// as it arrives over mutual TLS from a proxy of the calling service.
func explainInbound(e *client.Explanation, in *translate.Input, dest *translate.Resources, req Request) error {
	l := find[*listenerv3.Listener](dest, resource.ListenerType, xdsmeta.InboundListener)
	chain := meshChain(l)
	if chain == nil || len(chain.GetFilters()) == 0 {
		return fmt.Errorf("explain: the destination's proxy has no inbound filter chain for mutual TLS")
	}
	var h hcmv3.HttpConnectionManager
	if err := chain.GetFilters()[len(chain.GetFilters())-1].GetTypedConfig().UnmarshalTo(&h); err != nil {
		return fmt.Errorf("explain: the destination's inbound listener: %w", err)
	}
	var perRoute map[string]any
	inboundRoute := ""
	if rc := h.GetRouteConfig(); rc != nil {
		table, err := route.Compile(rc, func(c string) string { return c })
		if err != nil {
			return fmt.Errorf("explain: the destination's inbound routes: %w", err)
		}
		if rt := table.MatchRequest(&route.Request{Host: e.To, Path: req.Path, Method: req.Method, Scheme: "https", Header: req.Header}); rt != nil {
			perRoute, inboundRoute = rt.PerFilter, rt.Name
		}
	}
	hr, s := inboundRequest(e, req, in.TrustDomain)
	log := slog.New(slog.DiscardHandler)
	for i, f := range h.GetHttpFilters() {
		a := f.GetTypedConfig()
		if a.MessageIs(&routerv3.Router{}) {
			break
		}
		ef := client.ExplainedFilter{Name: f.GetName(), Decision: "continue"}
		fac, ok := filter.ByConfig(a.MessageName())
		if !ok {
			return fmt.Errorf("explain: http_filters[%d] %s: not linked into this build", i, f.GetName())
		}
		if fac.Name == filterLocalRateLimit || fac.Name == filterRateLimit {
			ef.Decision, ef.Detail = "counts", describeLimit(in, req.To, inboundRoute, fac.Name)
			e.Filters = append(e.Filters, ef)
			continue
		}
		cfg := fac.Config.ProtoReflect().New().Interface()
		if err := a.UnmarshalTo(cfg); err != nil {
			return fmt.Errorf("explain: http_filters[%d] %s: %w", i, f.GetName(), err)
		}
		hf, err := fac.New(cfg, filter.Env{Log: log, Metadata: chain.GetMetadata().GetFilterMetadata()[f.GetName()]})
		if err != nil {
			return fmt.Errorf("explain: http_filters[%d] %s: %w", i, f.GetName(), err)
		}
		d := hf.DecodeHeaders(hr, s, perRoute[f.GetName()])
		if d.Delay > 0 {
			ef.Decision, ef.Detail = "delay", d.Delay.String()
		}
		if rep := d.Reply; rep != nil {
			ef.Decision, ef.Status, ef.Reason = "reply", rep.Status, rep.Reason
			for k, v := range rep.Header {
				if ef.Header == nil {
					ef.Header = map[string]string{}
				}
				ef.Header[strings.ToLower(k)] = strings.Join(v, ", ")
			}
			e.Filters = append(e.Filters, ef)
			e.Verdict = fmt.Sprintf("refused by %s: %d %s", f.GetName(), rep.Status, rep.Reason)
			return nil
		}
		e.Filters = append(e.Filters, ef)
	}
	e.Verdict = "forwarded"
	return nil
}

// meshChain is the inbound filter chain that serves mutual TLS: the only
// one in STRICT mode, the "tls" one in PERMISSIVE.
func meshChain(l *listenerv3.Listener) *listenerv3.FilterChain {
	for _, fc := range l.GetFilterChains() {
		if tp := fc.GetFilterChainMatch().GetTransportProtocol(); tp == "" || tp == "tls" {
			return fc
		}
	}
	return nil
}

// inboundRequest is the request as the destination's proxy sees it: from a
// proxy of the caller, whose SVID carries the caller's SPIFFE ID.
func inboundRequest(e *client.Explanation, req Request, trustDomain string) (*http.Request, *filter.Stream) {
	hr := &http.Request{
		Method: req.Method, Host: e.To, RequestURI: req.Path, Proto: "HTTP/2.0", ProtoMajor: 2,
		Header: req.Header.Clone(), URL: &url.URL{Path: req.Path},
	}
	if hr.Header == nil {
		hr.Header = http.Header{}
	}
	if p, q, ok := strings.Cut(req.Path, "?"); ok {
		hr.URL.Path, hr.URL.RawQuery = p, q
	}
	id := spiffe.ID{TrustDomain: trustDomain, Namespace: req.From.Namespace, Service: req.From.Name}
	cert := &x509.Certificate{URIs: []*url.URL{id.URL()}}
	hr.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, HandshakeComplete: true}
	return hr, &filter.Stream{TLS: hr.TLS}
}

// explainInboundTCP runs the destination's network RBAC filters on a
// connection from a proxy of the caller.
func explainInboundTCP(e *client.Explanation, in *translate.Input, dest *translate.Resources, req Request) error {
	l := find[*listenerv3.Listener](dest, resource.ListenerType, xdsmeta.InboundListener)
	chain := meshChain(l)
	if chain == nil {
		return fmt.Errorf("explain: the destination's proxy has no inbound filter chain for mutual TLS")
	}
	id := spiffe.ID{TrustDomain: in.TrustDomain, Namespace: req.From.Namespace, Service: req.From.Name}
	conn := &rbac.Request{Peer: id.String(), Authenticated: true}
	for i, f := range chain.GetFilters() {
		var cfg rbacnetv3.RBAC
		if !f.GetTypedConfig().MessageIs(&cfg) {
			continue
		}
		if err := f.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
			return fmt.Errorf("explain: the destination's filters[%d] %s: %w", i, f.GetName(), err)
		}
		eng, err := rbac.Compile(cfg.GetRules(), true)
		if err != nil {
			return fmt.Errorf("explain: the destination's filters[%d] %s: %w", i, f.GetName(), err)
		}
		ef := client.ExplainedFilter{Name: f.GetName(), Decision: "continue"}
		if ok, deniedBy, reply := eng.Allowed(conn); !ok {
			ef.Decision, ef.Reason = "close", reply.Reason
			ef.Header = map[string]string{"weft-denied-by": deniedBy}
			e.Filters = append(e.Filters, ef)
			e.Verdict = "refused by " + f.GetName() + ": the connection is closed (" + deniedBy + ")"
			return nil
		}
		e.Filters = append(e.Filters, ef)
	}
	e.Verdict = "forwarded"
	return nil
}
