package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	exprv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rate_limit_descriptors/expr/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// RateLimits: a destination's limits, enforced on its inbound listener.
//
// Each limit becomes inbound routes (one per match alternative, in order,
// before the catch-all to the app) that carry its configuration per route:
// a local token bucket for envoy.filters.http.local_ratelimit and the
// descriptor actions for envoy.filters.http.ratelimit, which asks the
// control plane's rate limit service. Both are in typed_per_filter_config
// (LocalRateLimit and RateLimitPerRoute.rate_limits, which Envoy prefers
// to RouteAction.rate_limits), so each filter gets what it needs through
// its own per-route config. A global descriptor is
// (destination=<svc>.<ns>, limit=<name>[, source=<caller's SPIFFE ID>]).

// Extension names, as Envoy registers them.
const (
	filterLocalRateLimit = "envoy.filters.http.local_ratelimit"
	filterRateLimit      = "envoy.filters.http.ratelimit"
	descriptorsExpr      = "envoy.rate_limit_descriptors.expr"
)

// maxSourceBuckets bounds the per-source buckets a proxy keeps for one
// limit: enough for every caller of a large mesh, few enough to bound its
// memory. The least recently used go first.
const maxSourceBuckets = 1024

// rateLimitFilters are the filters that apply the RateLimit of self: the
// local one, then the global one, each present only when a limit uses it.
// Their listener-level configs limit nothing; the routes say what to count.
func (t *translation) rateLimitFilters(self ServiceKey) []*hcmv3.HttpFilter {
	rl := t.in.rateLimitOf(self)
	if rl == nil {
		return nil
	}
	var local, global bool
	for i := range rl.Limits {
		local = local || rl.Limits[i].Local != nil
		global = global || rl.Limits[i].Global != nil
	}
	var fs []*hcmv3.HttpFilter
	if local {
		fs = append(fs, &hcmv3.HttpFilter{
			Name: filterLocalRateLimit,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: t.any(&localratelimitv3.LocalRateLimit{
				StatPrefix: xdsmeta.LocalRateLimitStatPrefix,
			})},
		})
	}
	if global {
		fs = append(fs, &hcmv3.HttpFilter{
			Name:       filterRateLimit,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: t.any(globalRateLimit(rl))},
		})
	}
	return fs
}

// globalRateLimit is the listener-level config of the global filter: the
// domain, where the rate limit service is and what to do without it.
func globalRateLimit(rl *v1alpha1.RateLimitSpec) *ratelimitv3.RateLimit {
	timeout := durationpb.New(rl.Timeout.Duration)
	return &ratelimitv3.RateLimit{
		Domain:          xdsmeta.RateLimitDomain,
		StatPrefix:      xdsmeta.RateLimitStatPrefix,
		Timeout:         timeout,
		FailureModeDeny: rl.FailureMode == v1alpha1.FailureModeClosed,
		RateLimitService: &ratelimitconfv3.RateLimitServiceConfig{
			GrpcService: &corev3.GrpcService{
				TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
					ClusterName: xdsmeta.ControlPlaneCluster,
				}},
			},
			TransportApiVersion: corev3.ApiVersion_V3,
		},
		EnableXRatelimitHeaders:        ratelimitv3.RateLimit_DRAFT_VERSION_03,
		EnableRetryAfterHeader:         true,
		RateLimitedAsResourceExhausted: true,
		// Envoy answers 500 when it fails closed; 503 says the refusal is
		// the limit service's absence, not the app's fault.
		StatusOnError: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
	}
}

// rateLimitRoutes are the inbound routes of the limits of self, to cluster,
// in order. catchAll reports whether the last one takes every request, so
// that no catch-all is needed after them.
func (t *translation) rateLimitRoutes(self ServiceKey, cluster string) (routes []*routev3.Route, catchAll bool) {
	rl := t.in.rateLimitOf(self)
	if rl == nil {
		return nil, false
	}
	for i := range rl.Limits {
		l := &rl.Limits[i]
		matches, ok := t.in.limitMatches(self, l)
		if !ok {
			continue // its Route rule does not exist (yet): it counts nothing
		}
		perFilter := t.limitPerFilterConfig(self, l)
		if len(matches) == 0 {
			r := routeAll(cluster)
			r.Name, r.TypedPerFilterConfig = l.Name, perFilter
			return append(routes, r), true
		}
		for j := range matches {
			r := routeAll(cluster)
			r.Name, r.Match, r.TypedPerFilterConfig = l.Name, routeMatch(&matches[j]), perFilter
			routes = append(routes, r)
		}
	}
	return routes, false
}

// limitPerFilterConfig is the per-route config of a limit for the filters
// it uses.
func (t *translation) limitPerFilterConfig(self ServiceKey, l *v1alpha1.Limit) map[string]*anypb.Any {
	out := map[string]*anypb.Any{}
	if b := l.Local; b != nil {
		out[filterLocalRateLimit] = t.any(t.localRateLimit(localStatPrefix(self, l.Name), b, l.PerSource))
	}
	if l.Global != nil {
		actions := []*routev3.RateLimit_Action{
			genericKey(xdsmeta.DescriptorDestination, host(self)),
			genericKey(xdsmeta.DescriptorLimit, l.Name),
		}
		if l.PerSource {
			actions = append(actions, t.sourceAction())
		}
		out[filterRateLimit] = t.any(&ratelimitv3.RateLimitPerRoute{
			RateLimits: []*routev3.RateLimit{{Actions: actions}},
		})
	}
	return out
}

// localRateLimit is the per-route config of the local filter: one token
// bucket for the route or, per source, a bucket for each caller's SPIFFE ID
// (a descriptor entry with an empty value is a bucket per distinct value),
// and the default bucket for requests that carry no identity.
func (t *translation) localRateLimit(statPrefix string, b *v1alpha1.LocalLimit, perSource bool) *localratelimitv3.LocalRateLimit {
	bucket := &typev3.TokenBucket{
		MaxTokens:     b.Burst,
		TokensPerFill: wrapperspb.UInt32(b.Requests),
		FillInterval:  durationpb.New(b.Unit.Duration()),
	}
	all := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
		Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED,
	}}
	c := &localratelimitv3.LocalRateLimit{
		StatPrefix:                     statPrefix,
		TokenBucket:                    bucket,
		FilterEnabled:                  all,
		FilterEnforced:                 all,
		EnableXRatelimitHeaders:        commonratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
		RateLimitedAsResourceExhausted: true,
		EnableRetryAfterHeader:         true,
	}
	if perSource {
		c.Descriptors = []*commonratelimitv3.LocalRateLimitDescriptor{{
			Entries:     []*commonratelimitv3.RateLimitDescriptor_Entry{{Key: xdsmeta.DescriptorSource}},
			TokenBucket: bucket,
		}}
		c.RateLimits = []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{t.sourceAction()}}}
		c.AlwaysConsumeDefaultTokenBucket = wrapperspb.Bool(false)
		c.MaxDynamicDescriptors = wrapperspb.UInt32(maxSourceBuckets)
	}
	return c
}

// localStatPrefix names the local buckets of one limit. Routes that carry
// the same local config share its buckets (those of a limit's match
// alternatives), so it names the limit and its service.
func localStatPrefix(self ServiceKey, limit string) string {
	return xdsmeta.LocalRateLimitStatPrefix + "." + host(self) + "." + limit
}

// sourceAction is the descriptor entry source=<the caller's SPIFFE ID>. A
// request without one (plaintext, in PERMISSIVE mode) skips the entry: it
// counts against the default bucket locally, and globally against one
// count that every caller without an identity shares.
func (t *translation) sourceAction() *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Extension{
		Extension: &corev3.TypedExtensionConfig{
			Name: descriptorsExpr,
			TypedConfig: t.any(&exprv3.Descriptor{
				DescriptorKey: xdsmeta.DescriptorSource,
				SkipIfError:   true,
				ExprSpecifier: &exprv3.Descriptor_Text{Text: xdsmeta.PeerIdentityExpr},
			}),
		},
	}}
}

func genericKey(key, value string) *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
		GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: key, DescriptorValue: value},
	}}
}

// rateLimitOf is the RateLimit of an HTTP service, or nil. A tcp service's
// RateLimit has nothing to count.
func (in *Input) rateLimitOf(key ServiceKey) *v1alpha1.RateLimitSpec {
	rl := in.RateLimits[key]
	if rl == nil || !in.protocol(key).IsHTTP() {
		return nil
	}
	return rl
}

// limitMatches are the match alternatives of a limit: its own, or those of
// the rule of the service's Route it names (none: every request). ok is
// false when that rule does not exist.
func (in *Input) limitMatches(key ServiceKey, l *v1alpha1.Limit) (matches []v1alpha1.RouteMatch, ok bool) {
	if l.RouteRule == "" {
		return l.Match, true
	}
	r := in.Routes[key]
	if r == nil {
		return nil, false
	}
	for i := range r.Rules {
		if r.Rules[i].Name == l.RouteRule {
			return r.Rules[i].Match, true
		}
	}
	return nil, false
}

// RateLimitReadsRoute reports whether the RateLimit of key names a rule of
// the service's Route, so that a change of that Route changes the inbound
// listener of the service's proxies.
func (in *Input) RateLimitReadsRoute(key ServiceKey) bool {
	if rl := in.RateLimits[key]; rl != nil {
		for i := range rl.Limits {
			if rl.Limits[i].RouteRule != "" {
				return true
			}
		}
	}
	return false
}
