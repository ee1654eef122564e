package translate

import (
	"slices"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// Extension names and the metadata contract of the JWT filter, whose
// verified claims RBAC reads.
const (
	filterRBACHTTP    = "envoy.filters.http.rbac"
	filterRBACNetwork = "envoy.filters.network.rbac"
	// JWTMetadataNamespace is the dynamic metadata key under which the JWT
	// filter records the verified token, its claims under JWTPayloadKey.
	JWTMetadataNamespace = "envoy.filters.http.jwt_authn"
	JWTPayloadKey        = "payload"
)

// AccessPolicy is one stored AccessPolicy of a destination.
type AccessPolicy struct {
	Name string
	// Revision is the store revision of the object, which status compares
	// with what each proxy was last sent.
	Revision int64
	Spec     *v1alpha1.AccessPolicySpec
}

// An AccessPolicy becomes Envoy RBAC on the destination's inbound
// listener, as Istio builds it: a DENY filter holding every DENY rule, then
// an ALLOW filter holding every ALLOW rule. A request any DENY rule matches
// is refused; when ALLOW rules exist, one that none of them matches is
// refused too. Each rule is one Envoy policy, named as the user sees it
// (AccessPolicySpec.RuleName), so the proxy can say which rule refused.

// rbacHTTPFilters enforce the AccessPolicies of self on HTTP requests.
func (t *translation) rbacHTTPFilters(self ServiceKey) []*hcmv3.HttpFilter {
	var fs []*hcmv3.HttpFilter
	for _, rules := range t.rbacRules(self) {
		fs = append(fs, &hcmv3.HttpFilter{
			Name:       filterRBACHTTP,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: t.any(&rbachttpv3.RBAC{Rules: rules})},
		})
	}
	return fs
}

// rbacNetworkFilters enforce the AccessPolicies of self on TCP connections.
func (t *translation) rbacNetworkFilters(self ServiceKey) []*listenerv3.Filter {
	var fs []*listenerv3.Filter
	for _, rules := range t.rbacRules(self) {
		fs = append(fs, &listenerv3.Filter{
			Name: filterRBACNetwork,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.any(&rbacnetworkv3.RBAC{
				Rules:      rules,
				StatPrefix: xdsmeta.InboundListener + ".",
			})},
		})
	}
	return fs
}

// rbacRules returns the DENY rules, then the ALLOW rules, of the
// AccessPolicies of self; either is absent when no policy has that action.
func (t *translation) rbacRules(self ServiceKey) []*rbacconfigv3.RBAC {
	policies := t.in.AccessPolicies[self]
	if len(policies) == 0 {
		return nil
	}
	deny := &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_DENY, Policies: map[string]*rbacconfigv3.Policy{}}
	allow := &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_ALLOW, Policies: map[string]*rbacconfigv3.Policy{}}
	a := accessTranslation{trustDomain: t.in.TrustDomain, namespace: self.Namespace, port: t.in.servedPort(self)}
	for _, p := range policies {
		into := allow
		if p.Spec.Action == v1alpha1.AccessDeny {
			into = deny
		}
		for i := range p.Spec.Rules {
			into.Policies[p.Spec.RuleName(self.Namespace, p.Name, i)] = a.policy(&p.Spec.Rules[i])
		}
	}
	var out []*rbacconfigv3.RBAC
	for _, r := range []*rbacconfigv3.RBAC{deny, allow} {
		if len(r.Policies) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// servedPort is the port of a service that its workloads' inbound
// listener serves: the first of its Service, 0 without one.
func (in *Input) servedPort(key ServiceKey) int32 {
	if s := in.Services[key]; s != nil && len(s.Ports) > 0 {
		return s.Ports[0].Port
	}
	return 0
}

// accessTranslation translates the rules of one destination.
type accessTranslation struct {
	trustDomain string
	// namespace is the destination's, which unqualified services are in.
	namespace string
	// port is the Service port the inbound listener serves.
	port int32
}

// policy is one rule: it matches a request when a permission (one of To)
// and a principal (one of From, with every condition of When) match.
func (a accessTranslation) policy(r *v1alpha1.AccessRule) *rbacconfigv3.Policy {
	p := &rbacconfigv3.Policy{}
	if len(r.To) == 0 {
		p.Permissions = []*rbacconfigv3.Permission{anyPermission()}
	}
	for i := range r.To {
		p.Permissions = append(p.Permissions, a.permission(&r.To[i]))
	}
	var conditions []*rbacconfigv3.Principal
	for i := range r.When {
		conditions = append(conditions, claimCondition(&r.When[i]))
	}
	sources := make([]*rbacconfigv3.Principal, 0, max(len(r.From), 1))
	for i := range r.From {
		sources = append(sources, a.source(&r.From[i]))
	}
	if len(sources) == 0 {
		sources = append(sources, &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Any{Any: true}})
	}
	for _, s := range sources {
		if len(conditions) == 0 {
			p.Principals = append(p.Principals, s)
			continue
		}
		ids := slices.Concat([]*rbacconfigv3.Principal{s}, conditions)
		if s.GetAny() {
			ids = conditions
		}
		p.Principals = append(p.Principals, andIDs(ids))
	}
	return p
}

// permission is one AccessRequest: every part that is set, each matching
// when any of its values does.
func (a accessTranslation) permission(r *v1alpha1.AccessRequest) *rbacconfigv3.Permission {
	var and []*rbacconfigv3.Permission
	if len(r.Methods) > 0 {
		var or []*rbacconfigv3.Permission
		for _, m := range r.Methods {
			or = append(or, &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Header{Header: &routev3.HeaderMatcher{
				Name:                 ":method",
				HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact(m)},
			}}})
		}
		and = append(and, orRules(or))
	}
	if len(r.Paths) > 0 {
		var or []*rbacconfigv3.Permission
		for i := range r.Paths {
			or = append(or, pathPermissions(&r.Paths[i])...)
		}
		and = append(and, orRules(or))
	}
	for i := range r.Headers {
		and = append(and, &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Header{Header: headerMatcher(&r.Headers[i])}})
	}
	if len(r.Ports) > 0 && !slices.Contains(r.Ports, a.port) {
		// The inbound listener serves one port of the Service; a request
		// for another can never arrive there. (Envoy's destination_port
		// would compare the listener's own port, not the Service's.)
		and = append(and, &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_NotRule{NotRule: anyPermission()}})
	}
	if len(and) == 0 {
		return anyPermission()
	}
	if len(and) == 1 {
		return and[0]
	}
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_AndRules{AndRules: &rbacconfigv3.Permission_Set{Rules: and}}}
}

// pathPermissions matches a path as a Route would: a prefix matches whole
// segments, so /admin matches /admin and /admin/users but not /administrator.
func pathPermissions(p *v1alpha1.PathMatch) []*rbacconfigv3.Permission {
	urlPath := func(m *matcherv3.StringMatcher) *rbacconfigv3.Permission {
		return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: m},
		}}}
	}
	switch {
	case p.Exact != "":
		return []*rbacconfigv3.Permission{urlPath(exact(p.Exact))}
	case p.Prefix == "/":
		return []*rbacconfigv3.Permission{urlPath(prefix("/"))}
	case p.Prefix != "":
		return []*rbacconfigv3.Permission{urlPath(exact(p.Prefix)), urlPath(prefix(p.Prefix + "/"))}
	}
	return []*rbacconfigv3.Permission{urlPath(regex(p.Regex))}
}

// headerMatcher is a Route's header match, reused by AccessPolicies.
func headerMatcher(h *v1alpha1.HeaderMatch) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: h.Name}
	switch {
	case h.Exact != "":
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: exact(h.Exact)}
	case h.Prefix != "":
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: prefix(h.Prefix)}
	case h.Regex != "":
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: regex(h.Regex)}
	case h.Present:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	case h.Absent:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		hm.InvertMatch = true
	}
	return hm
}

// source is one AccessSource: its values as SPIFFE ID matchers of the
// peer's certificate, or, for unauthenticated sources, a peer without one.
func (a accessTranslation) source(s *v1alpha1.AccessSource) *rbacconfigv3.Principal {
	if s.Unauthenticated {
		return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_NotId{NotId: anyAuthenticated()}}
	}
	var ids []*rbacconfigv3.Principal
	for _, id := range s.Identities {
		if id == "*" {
			ids = append(ids, anyAuthenticated())
			continue
		}
		ids = append(ids, peer(wildcard(id)))
	}
	for _, svc := range s.Services {
		ns, name, qualified := strings.Cut(svc, "/")
		if !qualified {
			ns, name = a.namespace, svc
		}
		switch {
		case ns == "*" && name == "*":
			ids = append(ids, anyAuthenticated())
		case ns == "*":
			ids = append(ids, peer(suffix("/sa/"+name)))
		case name == "*":
			ids = append(ids, peer(prefix(a.namespacePrefix(ns))))
		default:
			ids = append(ids, peer(exact(a.namespacePrefix(ns)+name)))
		}
	}
	for _, ns := range s.Namespaces {
		if ns == "*" {
			ids = append(ids, anyAuthenticated())
			continue
		}
		ids = append(ids, peer(prefix(a.namespacePrefix(ns))))
	}
	if len(ids) == 1 {
		return ids[0]
	}
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_OrIds{OrIds: &rbacconfigv3.Principal_Set{Ids: ids}}}
}

// namespacePrefix is the start of the SPIFFE IDs of a namespace's services.
func (a accessTranslation) namespacePrefix(ns string) string {
	return "spiffe://" + a.trustDomain + "/ns/" + ns + "/sa/"
}

// claimCondition holds when the claim matches one of Values (as a string,
// or as a list holding one) and none of NotValues.
func claimCondition(c *v1alpha1.AccessCondition) *rbacconfigv3.Principal {
	anyOf := func(values []string) *rbacconfigv3.Principal {
		var ids []*rbacconfigv3.Principal
		for _, v := range values {
			ids = append(ids, claimMatchers(c.Claim(), v)...)
		}
		return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_OrIds{OrIds: &rbacconfigv3.Principal_Set{Ids: ids}}}
	}
	var ids []*rbacconfigv3.Principal
	if len(c.Values) > 0 {
		ids = append(ids, anyOf(c.Values))
	}
	if len(c.NotValues) > 0 {
		ids = append(ids, &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_NotId{NotId: anyOf(c.NotValues)}})
	}
	if len(ids) == 1 {
		return ids[0]
	}
	return andIDs(ids)
}

// claimMatchers match a claim's value, per the JWT filter's metadata
// contract: a string claim equal to v, or a list claim holding it. "*"
// matches any value of a claim that is present.
func claimMatchers(claim, v string) []*rbacconfigv3.Principal {
	meta := func(vm *matcherv3.ValueMatcher) *rbacconfigv3.Principal {
		//lint:ignore SA1019 the JWT filter's contract is dynamic metadata, which metadata reads as sourced_metadata would.
		return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
			Filter: JWTMetadataNamespace,
			Path: []*matcherv3.MetadataMatcher_PathSegment{
				{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: JWTPayloadKey}},
				{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: claim}},
			},
			Value: vm,
		}}}
	}
	if v == "*" {
		return []*rbacconfigv3.Principal{meta(&matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}})}
	}
	sm := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: wildcard(v)}}
	return []*rbacconfigv3.Principal{
		meta(sm),
		meta(&matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
			MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: sm},
		}}}),
	}
}

// wildcard matches a value whose '*' stands at its start or end ("*" alone
// is handled by the callers).
func wildcard(v string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".+"}}}
	case strings.HasSuffix(v, "*"):
		return prefix(strings.TrimSuffix(v, "*"))
	case strings.HasPrefix(v, "*"):
		return suffix(strings.TrimPrefix(v, "*"))
	}
	return exact(v)
}

// peer matches the SPIFFE ID of the peer's verified certificate.
func peer(m *matcherv3.StringMatcher) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Authenticated_{
		Authenticated: &rbacconfigv3.Principal_Authenticated{PrincipalName: m},
	}}
}

// anyAuthenticated matches every peer with a verified certificate.
func anyAuthenticated() *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Authenticated_{
		Authenticated: &rbacconfigv3.Principal_Authenticated{},
	}}
}

func anyPermission() *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Any{Any: true}}
}

func orRules(rules []*rbacconfigv3.Permission) *rbacconfigv3.Permission {
	if len(rules) == 1 {
		return rules[0]
	}
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_OrRules{OrRules: &rbacconfigv3.Permission_Set{Rules: rules}}}
}

func andIDs(ids []*rbacconfigv3.Principal) *rbacconfigv3.Principal {
	if len(ids) == 1 {
		return ids[0]
	}
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_AndIds{AndIds: &rbacconfigv3.Principal_Set{Ids: ids}}}
}

func prefix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}

func suffix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s}}
}
