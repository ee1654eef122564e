package translate

import (
	"encoding/pem"
	"fmt"
	"net/url"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// RequestAuth: a destination's end-user authentication, enforced on its
// inbound listener by envoy.filters.http.jwt_authn (JwtAuthentication).
//
// Each issuer is a provider, "issuer-<i>" by its index, that records the
// verified claims in the request's metadata (payload_in_metadata) for the
// RBAC filter after it. The requirements are named in requirement_map:
// "optional" accepts a request without a token, "required" does not, and
// both need a token that is present to be valid for one of the issuers; a
// rule that narrows the issuers gets its own, "rules[<i>]". The rules
// become the filter's rules, in order: a path is a path_separated_prefix,
// a Route rule contributes its match alternatives. A final catch-all makes
// every other request "optional", so that a token sent anywhere is checked,
// as Istio does.

// Names of the requirements every RequestAuth has.
const (
	jwtOptional = "optional"
	jwtRequired = "required"
)

// jwtFilters authenticate end users with the RequestAuth of self.
func (t *translation) jwtFilters(self ServiceKey) []*hcmv3.HttpFilter {
	ra := t.in.requestAuthOf(self)
	if ra == nil {
		return nil
	}
	return []*hcmv3.HttpFilter{{
		Name:       xdsmeta.JWTFilter,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: t.any(jwtAuthentication(ra, t.in.Routes[self]))},
	}}
}

// requestAuthOf is the RequestAuth of an HTTP service, or nil. A tcp
// service's is ignored: a connection carries no token.
func (in *Input) requestAuthOf(key ServiceKey) *v1alpha1.RequestAuthSpec {
	ra := in.RequestAuths[key]
	if ra == nil || len(ra.Issuers) == 0 || !in.protocol(key).IsHTTP() {
		return nil
	}
	return ra
}

// RequestAuthReadsRoute reports whether the RequestAuth of key matches
// requests on rules of key's Route, so that a change of that Route changes
// the configuration of key's own proxies.
func (in *Input) RequestAuthReadsRoute(key ServiceKey) bool {
	ra := in.requestAuthOf(key)
	if ra == nil {
		return false
	}
	for i := range ra.Rules {
		if len(ra.Rules[i].RouteRules) > 0 {
			return true
		}
	}
	return false
}

// jwtProviderName names the provider of issuer i.
func jwtProviderName(i int) string { return fmt.Sprintf("issuer-%d", i) }

// jwtAuthentication is the filter's config for ra; route is the service's
// Route, whose rules ra's rules may name.
func jwtAuthentication(ra *v1alpha1.RequestAuthSpec, route *v1alpha1.RouteSpec) *jwtv3.JwtAuthentication {
	ja := &jwtv3.JwtAuthentication{
		Providers:      make(map[string]*jwtv3.JwtProvider, len(ra.Issuers)),
		RequirementMap: map[string]*jwtv3.JwtRequirement{},
	}
	all := make([]string, len(ra.Issuers))
	byIssuer := make(map[string]string, len(ra.Issuers))
	for i := range ra.Issuers {
		all[i] = jwtProviderName(i)
		byIssuer[ra.Issuers[i].Issuer] = all[i]
		ja.Providers[all[i]] = jwtProvider(&ra.Issuers[i])
	}
	ja.RequirementMap[jwtOptional] = jwtRequirement(all, true)
	ja.RequirementMap[jwtRequired] = jwtRequirement(all, false)

	catchAll := false
	for i := range ra.Rules {
		r := &ra.Rules[i]
		name := jwtOptional
		if r.Require {
			name = jwtRequired
		}
		if len(r.Issuers) > 0 {
			providers := make([]string, len(r.Issuers))
			for j, iss := range r.Issuers {
				providers[j] = byIssuer[iss]
			}
			name = fmt.Sprintf("rules[%d]", i)
			ja.RequirementMap[name] = jwtRequirement(providers, !r.Require)
		}
		for _, m := range jwtRuleMatches(r, route) {
			ja.Rules = append(ja.Rules, &jwtv3.RequirementRule{
				Match:           m,
				RequirementType: &jwtv3.RequirementRule_RequirementName{RequirementName: name},
			})
		}
		if len(r.Paths) == 0 && len(r.RouteRules) == 0 {
			catchAll = true
		}
	}
	if !catchAll {
		ja.Rules = append(ja.Rules, &jwtv3.RequirementRule{
			Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_RequirementName{RequirementName: jwtOptional},
		})
	}
	return ja
}

// jwtRequirement accepts a valid token of any of providers and, when
// optional, no token at all.
func jwtRequirement(providers []string, optional bool) *jwtv3.JwtRequirement {
	if len(providers) == 1 && !optional {
		return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: providers[0]}}
	}
	any := &jwtv3.JwtRequirementOrList{}
	for _, p := range providers {
		any.Requirements = append(any.Requirements,
			&jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: p}})
	}
	if optional {
		any.Requirements = append(any.Requirements,
			&jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}})
	}
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: any}}
}

// jwtRuleMatches are the matches of a rule: its paths, then the match
// alternatives of the Route rules it names, or every request when it has
// neither. The API server refuses a Route rule name that the Route lacks,
// and a Route that drops a named rule; should one still be missing (its
// Route deleted), a rule that requires a token fails closed and requires it
// on every request, while one that does not simply matches less.
func jwtRuleMatches(r *v1alpha1.RequestAuthRule, route *v1alpha1.RouteSpec) []*routev3.RouteMatch {
	every := []*routev3.RouteMatch{{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}}
	if len(r.Paths) == 0 && len(r.RouteRules) == 0 {
		return every
	}
	var ms []*routev3.RouteMatch
	for _, p := range r.Paths {
		ms = append(ms, routeMatch(&v1alpha1.RouteMatch{Path: &v1alpha1.PathMatch{Prefix: p}}))
	}
	for _, name := range r.RouteRules {
		i := -1
		if route != nil {
			i = slices.IndexFunc(route.Rules, func(rr v1alpha1.RouteRule) bool { return rr.Name == name })
		}
		switch {
		case i < 0 && r.Require:
			return every
		case i < 0:
			continue
		}
		rr := &route.Rules[i]
		if len(rr.Match) == 0 {
			ms = append(ms, every[0])
		}
		for j := range rr.Match {
			ms = append(ms, routeMatch(&rr.Match[j]))
		}
	}
	return ms
}

// jwtProvider is the provider of one issuer.
func jwtProvider(is *v1alpha1.JWTIssuer) *jwtv3.JwtProvider {
	p := &jwtv3.JwtProvider{
		Issuer:            is.Issuer,
		Audiences:         is.Audiences,
		Forward:           is.ForwardToken,
		PayloadInMetadata: xdsmeta.JWTPayloadKey,
		FromParams:        is.FromParams,
	}
	for _, h := range is.FromHeaders {
		p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.Name, ValuePrefix: h.Prefix})
	}
	if is.JWKS != "" {
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: is.JWKS},
		}}
		return p
	}
	host, port := is.JWKSURI, "443"
	if u, err := url.Parse(is.JWKSURI); err == nil {
		host = u.Hostname()
		if u.Port() != "" {
			port = u.Port()
		}
	}
	// Envoy requires http_uri.timeout.
	timeout := v1alpha1.DefaultJWKSTimeout
	if is.JWKSTimeout != nil {
		timeout = is.JWKSTimeout.Duration
	}
	remote := &jwtv3.RemoteJwks{HttpUri: &corev3.HttpUri{
		Uri:              is.JWKSURI,
		HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: xdsmeta.JWKSCluster(host, port)},
		Timeout:          durationpb.New(timeout),
	}}
	if is.JWKSCacheDuration != nil {
		remote.CacheDuration = durationpb.New(is.JWKSCacheDuration.Duration)
	}
	p.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: remote}
	return p
}

// inboundAuthnMetadata records in the metadata of the inbound listener's
// filter chains the roots of the remote key sets of self's RequestAuth
// that name their own (xdsmeta.JWKSCAKey).
func (t *translation) inboundAuthnMetadata(self ServiceKey, l *listenerv3.Listener) {
	ra := t.in.requestAuthOf(self)
	if ra == nil {
		return
	}
	cas := map[string]*structpb.Value{}
	for i := range ra.Issuers {
		if is := &ra.Issuers[i]; is.JWKSURI != "" && is.JWKSCA != "" {
			cas[jwtProviderName(i)] = structpb.NewStringValue(certificatesPEM(is.JWKSCA))
		}
	}
	if len(cas) == 0 {
		return
	}
	s := &structpb.Struct{Fields: map[string]*structpb.Value{
		xdsmeta.JWKSCAKey: structpb.NewStructValue(&structpb.Struct{Fields: cas}),
	}}
	for _, fc := range l.FilterChains {
		if fc.Metadata == nil {
			fc.Metadata = &corev3.Metadata{}
		}
		if fc.Metadata.FilterMetadata == nil {
			fc.Metadata.FilterMetadata = map[string]*structpb.Struct{}
		}
		fc.Metadata.FilterMetadata[xdsmeta.JWTFilter] = s
	}
}

// certificatesPEM re-encodes the CERTIFICATE blocks of pemText and drops
// whatever else it holds (comments, which need not even be UTF-8).
func certificatesPEM(pemText string) string {
	var out []byte
	for rest := []byte(pemText); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return string(out)
		}
		if b.Type == "CERTIFICATE" {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: b.Bytes})...)
		}
	}
}
