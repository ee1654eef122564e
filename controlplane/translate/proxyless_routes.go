package translate

import (
	"regexp"
	"slices"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/weftmesh/weft/api/v1alpha1"
	"google.golang.org/protobuf/proto"
)

// grpcRetryOn are the retry_on conditions gRPC honours (A44): status codes.
// A sidecar sees a gRPC error as an HTTP 200 with a grpc-status trailer, so
// 5xx and gateway-error never fire for gRPC there either; connection
// failures gRPC retries transparently by itself.
var grpcRetryOn = []string{
	string(v1alpha1.RetryOnCancelled), string(v1alpha1.RetryOnDeadlineExceeded), string(v1alpha1.RetryOnInternal),
	string(v1alpha1.RetryOnResourceExhausted), string(v1alpha1.RetryOnUnavailable),
}

// grpcMethod is the HTTP method of every gRPC call.
const grpcMethod = "POST"

// proxylessRoutes rewrites a service's sidecar routes into what a gRPC
// client matches and applies, so that a call takes the same route, with the
// same split, timeout, retries, fault and hash, as through a sidecar:
//
//   - a :method match is decided here, against POST: a route that needs
//     another method is dropped, a POST match is dropped from the route
//     (gRPC does not match on pseudo-headers);
//   - a route with query parameter matches is dropped: a gRPC call has no
//     query, and gRPC ignores such routes (A28);
//   - a segment prefix (path_separated_prefix, which gRPC lacks) becomes an
//     exact path route and a prefix route ending in '/';
//   - the route timeout becomes max_stream_duration, the deadline gRPC
//     applies to the whole call (A31);
//   - retry_on keeps gRPC status codes only, without per-try timeouts or
//     HTTP status codes (A44); a policy with none left is dropped;
//   - hash policies keep headers only (A42): gRPC has no cookie or source
//     IP hashing, and without a policy it hashes at random;
//   - mirrors and header edits, which gRPC does not implement, are dropped.
func proxylessRoutes(routes []*routev3.Route) []*routev3.Route {
	out := make([]*routev3.Route, 0, len(routes))
	for _, sidecar := range routes {
		r := proto.Clone(sidecar).(*routev3.Route)
		m := r.GetMatch()
		if len(m.GetQueryParameters()) > 0 || !matchPOST(m) {
			continue
		}
		r.RequestHeadersToAdd, r.RequestHeadersToRemove = nil, nil
		r.ResponseHeadersToAdd, r.ResponseHeadersToRemove = nil, nil
		proxylessAction(r.GetRoute())
		if p, ok := m.GetPathSpecifier().(*routev3.RouteMatch_PathSeparatedPrefix); ok {
			exactRoute := proto.Clone(r).(*routev3.Route)
			exactRoute.Match.PathSpecifier = &routev3.RouteMatch_Path{Path: p.PathSeparatedPrefix}
			m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: p.PathSeparatedPrefix + "/"}
			out = append(out, exactRoute)
		}
		out = append(out, r)
	}
	return out
}

// matchPOST removes the :method matchers of m that POST satisfies and
// reports whether all of them did.
func matchPOST(m *routev3.RouteMatch) bool {
	ok := true
	m.Headers = slices.DeleteFunc(m.Headers, func(h *routev3.HeaderMatcher) bool {
		if h.GetName() != ":method" {
			return false
		}
		matched := false
		if sm := h.GetStringMatch(); sm != nil {
			switch {
			case sm.GetExact() != "":
				matched = sm.GetExact() == grpcMethod
			case sm.GetSafeRegex() != nil:
				re, err := regexp.Compile("^(?:" + sm.GetSafeRegex().GetRegex() + ")$")
				matched = err == nil && re.MatchString(grpcMethod)
			}
		} else if h.GetPresentMatch() {
			matched = true
		}
		if matched == h.GetInvertMatch() {
			ok = false
		}
		return true
	})
	return ok
}

// proxylessAction rewrites a route action in place for gRPC.
func proxylessAction(a *routev3.RouteAction) {
	if a == nil {
		return
	}
	if d := a.GetTimeout(); d != nil {
		if d.AsDuration() > 0 {
			a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: d}
		}
		a.Timeout = nil
	}
	if p := a.GetRetryPolicy(); p != nil {
		var on []string
		for c := range strings.SplitSeq(p.GetRetryOn(), ",") {
			if c = strings.TrimSpace(c); slices.Contains(grpcRetryOn, c) {
				on = append(on, c)
			}
		}
		if len(on) == 0 || p.GetNumRetries().GetValue() == 0 {
			a.RetryPolicy = nil
		} else {
			p.RetryOn = strings.Join(on, ",")
			p.PerTryTimeout, p.RetriableStatusCodes = nil, nil
			// gRPC refuses zero intervals; unset ones take its defaults
			// (25ms, and ten times the base).
			if b := p.GetRetryBackOff(); b.GetBaseInterval().AsDuration() <= 0 {
				p.RetryBackOff = nil
			} else if b.GetMaxInterval().AsDuration() <= 0 {
				b.MaxInterval = nil
			}
		}
	}
	a.RequestMirrorPolicies = nil
	a.HashPolicy = slices.DeleteFunc(a.HashPolicy, func(h *routev3.RouteAction_HashPolicy) bool {
		return h.GetHeader() == nil
	})
	if len(a.HashPolicy) == 0 {
		a.HashPolicy = nil
	}
}
