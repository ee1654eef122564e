package translate

import (
	"fmt"
	"math"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Routes and DestinationPolicies: how the traffic to a service is matched,
// split, retried, faulted, mirrored and balanced.

// filterFault is the HTTP fault injection filter.
const filterFault = "envoy.filters.http.fault"

// idempotentMethods are the methods a retry may repeat unless a rule says
// retryNonIdempotent: RFC 9110's idempotent methods.
var idempotentMethods = []string{"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}

// idempotentMethodRegex matches exactly the idempotent methods.
var idempotentMethodRegex = strings.Join(idempotentMethods, "|")

// RouteTargets lists, sorted, the services other than key itself that the
// Route of key sends traffic to: its backends and mirrors. A proxy that
// routes to key reads their clusters and endpoints too.
func (in *Input) RouteTargets(key ServiceKey) []ServiceKey {
	return routeSpecTargets(key, in.Routes[key])
}

// routeSpecTargets is RouteTargets for the Route r of key.
func routeSpecTargets(key ServiceKey, r *v1alpha1.RouteSpec) []ServiceKey {
	if r == nil {
		return nil
	}
	var out []ServiceKey
	add := func(name string) {
		if name == "" || name == key.Name {
			return
		}
		k := ServiceKey{Namespace: key.Namespace, Name: name}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for i := range r.Rules {
		for _, b := range r.Rules[i].Backends {
			add(b.Service)
		}
		if m := r.Rules[i].Mirror; m != nil {
			add(m.Service)
		}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// targetOf is the service a backend or mirror names, the Route's own when
// it names none.
func targetOf(route ServiceKey, service string) ServiceKey {
	if service == "" {
		return route
	}
	return ServiceKey{Namespace: route.Namespace, Name: service}
}

// targetCluster is the cluster of a service, or of one of its subsets.
func targetCluster(key ServiceKey, subset string) string {
	if subset == "" {
		return xdsmeta.OutboundCluster(key.Name, key.Namespace)
	}
	return xdsmeta.SubsetCluster(key.Name, key.Namespace, subset)
}

// retryBudget is the retry budget of a cluster: that of the first rule with
// retries, in the order of the Routes' services then of their rules, that
// sends traffic to it. It is nil when no such rule exists.
func (in *Input) retryBudget(cluster string) *v1alpha1.RetryBudget {
	if len(in.Routes) == 0 {
		return nil
	}
	for _, key := range sortedKeys(in.Routes) {
		r := in.Routes[key]
		for i := range r.Rules {
			rule := &r.Rules[i]
			if rule.Retries == nil {
				continue
			}
			for _, b := range rule.Backends {
				if targetCluster(targetOf(key, b.Service), b.Subset) == cluster {
					return &rule.Retries.Budget
				}
			}
		}
	}
	return nil
}

// retryBudgetClusters lists the clusters whose retry budget a Route sets.
func retryBudgetClusters(key ServiceKey, r *v1alpha1.RouteSpec) []ServiceKey {
	if r == nil {
		return nil
	}
	var out []ServiceKey
	for i := range r.Rules {
		if r.Rules[i].Retries == nil {
			continue
		}
		for _, b := range r.Rules[i].Backends {
			if k := targetOf(key, b.Service); !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// ClustersTouchedBy lists the services whose clusters the Route of key
// changes besides its own route configuration: those whose retry budget it
// sets. A change of that Route reaches every proxy that holds them.
func ClustersTouchedBy(key ServiceKey, r *v1alpha1.RouteSpec) []ServiceKey {
	return retryBudgetClusters(key, r)
}

// hasFault reports whether the Route of key injects faults.
func (in *Input) hasFault(key ServiceKey) bool {
	r := in.Routes[key]
	if r == nil || !in.protocol(key).IsHTTP() {
		return false
	}
	for i := range r.Rules {
		if r.Rules[i].Fault != nil {
			return true
		}
	}
	return false
}

// serviceRoutes are the Envoy routes of the traffic to key: the Route's
// rules in order, then a catch-all to the service's own cluster.
func (t *translation) serviceRoutes(key ServiceKey) []*routev3.Route {
	catchAll := routeAll(xdsmeta.OutboundCluster(key.Name, key.Namespace))
	catchAll.GetRoute().HashPolicy = t.hashPolicies([]ServiceKey{key})
	r := t.in.Routes[key]
	if r == nil || !t.in.protocol(key).IsHTTP() {
		return []*routev3.Route{catchAll}
	}
	var routes []*routev3.Route
	for i := range r.Rules {
		// Each route bears its rule's name (rule-N when unnamed), for
		// config dumps and explanations.
		name := r.Rules[i].Name
		if name == "" {
			name = fmt.Sprintf("rule-%d", i)
		}
		for _, rt := range t.ruleRoutes(key, &r.Rules[i]) {
			rt.Name = name
			routes = append(routes, rt)
		}
	}
	return append(routes, catchAll)
}

// ruleRoutes are the Envoy routes of one rule: one per match alternative,
// each split in two when retries must be kept to idempotent methods.
func (t *translation) ruleRoutes(key ServiceKey, rule *v1alpha1.RouteRule) []*routev3.Route {
	matches := rule.Match
	if len(matches) == 0 {
		matches = []v1alpha1.RouteMatch{{}}
	}
	var routes []*routev3.Route
	for i := range matches {
		m := &matches[i]
		switch {
		case rule.Retries == nil || rule.Retries.RetryNonIdempotent:
			routes = append(routes, t.ruleRoute(key, rule, m, true, false))
		case m.Method != "":
			routes = append(routes, t.ruleRoute(key, rule, m, slices.Contains(idempotentMethods, m.Method), false))
		default:
			routes = append(routes,
				t.ruleRoute(key, rule, m, true, true),
				t.ruleRoute(key, rule, m, false, false))
		}
	}
	return routes
}

// ruleRoute is the Envoy route of one match of a rule. retries says whether
// it carries the rule's retry policy, idempotentOnly whether it matches only
// idempotent methods.
func (t *translation) ruleRoute(key ServiceKey, rule *v1alpha1.RouteRule, m *v1alpha1.RouteMatch, retries, idempotentOnly bool) *routev3.Route {
	match := routeMatch(m)
	if idempotentOnly {
		match.Headers = append(match.Headers, &routev3.HeaderMatcher{
			Name: ":method",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: idempotentMethodRegex}},
			}},
		})
	}
	action := &routev3.RouteAction{Timeout: durationpb.New(0)}
	var dests []ServiceKey
	if len(rule.Backends) == 1 {
		b := rule.Backends[0]
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: targetCluster(targetOf(key, b.Service), b.Subset)}
		dests = append(dests, targetOf(key, b.Service))
	} else {
		wc := &routev3.WeightedCluster{}
		for _, b := range rule.Backends {
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
				Name:   targetCluster(targetOf(key, b.Service), b.Subset),
				Weight: wrapperspb.UInt32(uint32(weightOf(b))),
			})
			if d := targetOf(key, b.Service); !slices.Contains(dests, d) {
				dests = append(dests, d)
			}
		}
		action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if rule.Timeout != nil {
		action.Timeout = durationpb.New(rule.Timeout.Duration)
	}
	if p := rule.Retries; p != nil {
		switch {
		case retries:
			action.RetryPolicy = retryPolicy(p)
		case slices.Contains(p.RetryOn, v1alpha1.RetryOnConnectFailure):
			// A request that never reached a backend may be retried
			// whatever its method: nothing has been done twice.
			rp := retryPolicy(p)
			rp.RetryOn = string(v1alpha1.RetryOnConnectFailure)
			rp.RetriableStatusCodes = nil
			action.RetryPolicy = rp
		}
	}
	if m := rule.Mirror; m != nil {
		action.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{
			Cluster:         targetCluster(targetOf(key, m.Service), m.Subset),
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: fractionalPercent(percentOf(m.Percentage))},
		}}
	}
	action.HashPolicy = t.hashPolicies(dests)
	r := &routev3.Route{Match: match, Action: &routev3.Route_Route{Route: action}}
	if rule.Fault != nil {
		r.TypedPerFilterConfig = map[string]*anypb.Any{filterFault: t.any(httpFault(rule.Fault))}
	}
	if e := rule.RequestHeaders; e != nil {
		r.RequestHeadersToAdd = headersToAdd(e)
		r.RequestHeadersToRemove = slices.Clone(e.Remove)
	}
	if e := rule.ResponseHeaders; e != nil {
		r.ResponseHeadersToAdd = headersToAdd(e)
		r.ResponseHeadersToRemove = slices.Clone(e.Remove)
	}
	return r
}

func weightOf(b v1alpha1.Backend) int32 {
	if b.Weight == nil {
		return 1
	}
	return *b.Weight
}

func percentOf(p *float64) float64 {
	if p == nil {
		return 100
	}
	return *p
}

// routeMatch is the Envoy match of one match alternative; an empty one
// matches every request.
func routeMatch(m *v1alpha1.RouteMatch) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{}
	switch p := m.Path; {
	case p == nil:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	case p.Exact != "":
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: p.Exact}
	case p.Prefix == "/":
		// Every path: Envoy's path_separated_prefix may not end with '/'.
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	case p.Prefix != "":
		rm.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: p.Prefix}
	default:
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: p.Regex}}
	}
	if m.Method != "" {
		rm.Headers = append(rm.Headers, &routev3.HeaderMatcher{
			Name:                 ":method",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact(m.Method)},
		})
	}
	for _, h := range m.Headers {
		hm := &routev3.HeaderMatcher{Name: h.Name}
		switch {
		case h.Exact != "":
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: exact(h.Exact)}
		case h.Prefix != "":
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: h.Prefix},
			}}
		case h.Regex != "":
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: regex(h.Regex)}
		case h.Present:
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		case h.Absent:
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
			hm.InvertMatch = true
		}
		rm.Headers = append(rm.Headers, hm)
	}
	for _, q := range m.QueryParams {
		qm := &routev3.QueryParameterMatcher{Name: q.Name}
		switch {
		case q.Exact != "":
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: exact(q.Exact)}
		case q.Regex != "":
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: regex(q.Regex)}
		case q.Present:
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	return rm
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func regex(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s}}}
}

func retryPolicy(p *v1alpha1.RetryPolicy) *routev3.RetryPolicy {
	on := make([]string, len(p.RetryOn))
	for i, r := range p.RetryOn {
		on[i] = string(r)
	}
	rp := &routev3.RetryPolicy{
		RetryOn:    strings.Join(on, ","),
		NumRetries: wrapperspb.UInt32(uint32(p.Attempts)),
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{
			BaseInterval: durationpb.New(p.Backoff.BaseInterval.Duration),
			MaxInterval:  durationpb.New(p.Backoff.MaxInterval.Duration),
		},
	}
	if p.PerTryTimeout != nil {
		rp.PerTryTimeout = durationpb.New(p.PerTryTimeout.Duration)
	}
	for _, c := range p.RetriableStatusCodes {
		rp.RetriableStatusCodes = append(rp.RetriableStatusCodes, uint32(c))
	}
	return rp
}

// fractionalPercent expresses a percentage: per hundred when it is whole,
// per million otherwise.
func fractionalPercent(p float64) *typev3.FractionalPercent {
	if p == math.Trunc(p) {
		return &typev3.FractionalPercent{Numerator: uint32(p), Denominator: typev3.FractionalPercent_HUNDRED}
	}
	return &typev3.FractionalPercent{Numerator: uint32(math.Round(p * 10_000)), Denominator: typev3.FractionalPercent_MILLION}
}

func httpFault(f *v1alpha1.Fault) *faultv3.HTTPFault {
	hf := &faultv3.HTTPFault{}
	if d := f.Delay; d != nil {
		hf.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d.Fixed.Duration)},
			Percentage:         fractionalPercent(percentOf(d.Percentage)),
		}
	}
	if a := f.Abort; a != nil {
		fa := &faultv3.FaultAbort{Percentage: fractionalPercent(percentOf(a.Percentage))}
		if a.GRPCStatus != "" {
			fa.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: uint32(a.GRPCStatus.Code())}
		} else {
			fa.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(a.HTTPStatus)}
		}
		hf.Abort = fa
	}
	return hf
}

func headersToAdd(e *v1alpha1.HeaderEdits) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, h := range e.Set {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, h := range e.Add {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

// hashPolicies are the hash policies of the ringHash destinations among
// dests, in order.
func (t *translation) hashPolicies(dests []ServiceKey) []*routev3.RouteAction_HashPolicy {
	var out []*routev3.RouteAction_HashPolicy
	for _, d := range dests {
		p := t.in.Policies[d]
		if p == nil || p.LoadBalancer.Type != v1alpha1.LoadBalancerRingHash || p.LoadBalancer.RingHash == nil {
			continue
		}
		rh := p.LoadBalancer.RingHash
		hp := &routev3.RouteAction_HashPolicy{}
		switch {
		case rh.Header != "":
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: rh.Header}}
		case rh.Cookie != nil:
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{
				Name: rh.Cookie.Name, Ttl: durationpb.New(rh.Cookie.TTL.Duration),
			}}
		default:
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_ConnectionProperties_{
				ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true},
			}
		}
		out = append(out, hp)
	}
	return out
}

// tcpRoute is the TcpProxy cluster choice of a tcp service with a Route:
// its first rule's backends, weighted.
func (t *translation) tcpRouteProxy(statPrefix string, key ServiceKey) *tcpproxyv3.TcpProxy {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: statPrefix}
	r := t.in.Routes[key]
	if r == nil || len(r.Rules) == 0 || len(r.Rules[0].Backends) == 0 {
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: xdsmeta.OutboundCluster(key.Name, key.Namespace)}
		return tp
	}
	// Envoy's TcpProxy takes weights of at least 1: a backend at weight 0
	// (a finished canary) is left out. The API keeps one weight positive.
	backends := slices.DeleteFunc(slices.Clone(r.Rules[0].Backends), func(b v1alpha1.Backend) bool { return weightOf(b) == 0 })
	if len(backends) == 1 {
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: targetCluster(targetOf(key, backends[0].Service), backends[0].Subset)}
		return tp
	}
	wc := &tcpproxyv3.TcpProxy_WeightedCluster{}
	for _, b := range backends {
		wc.Clusters = append(wc.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{
			Name:   targetCluster(targetOf(key, b.Service), b.Subset),
			Weight: uint32(weightOf(b)),
		})
	}
	tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
	return tp
}

func sortedKeys[V any](m map[ServiceKey]V) []ServiceKey {
	keys := make([]ServiceKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}
