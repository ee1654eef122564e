// Package rbac is Envoy's role-based access control: the HTTP filter
// envoy.filters.http.rbac, registered here, and the engine that the
// network filter envoy.filters.network.rbac shares (the runtime builds that
// one beside its TCP proxy). Policies are compiled once per configuration;
// matching a request reads it without allocating.
package rbac

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/proxy/filter"
	"github.com/weftmesh/weft/proxy/match"
)

// DefaultDeny names, in the weft-denied-by header, the refusal of a request
// that no policy of an ALLOW engine matched.
const DefaultDeny = "default-deny"

// DeniedByHeader is the response header that names the rule that refused a
// request.
const DeniedByHeader = "Weft-Denied-By"

// Engine is one compiled RBAC: its action and its policies, by name.
type Engine struct {
	deny     bool
	policies []policy
	// fallback is the refusal of an ALLOW engine that no policy matched.
	fallback *filter.Reply
}

type policy struct {
	name        string
	permissions []permission // any
	principals  []principal  // any
	reply       *filter.Reply
}

// Request is what an engine reads of a request or connection.
type Request struct {
	// Peer is the downstream's verified SPIFFE ID ("" without one), and
	// Authenticated whether it presented a verified certificate at all.
	Peer          string
	Authenticated bool
	// The fields below are unset for a TCP connection.
	Method string
	// Path is the request path, normalised, without the query.
	Path   string
	Host   string
	Header http.Header
	// Stream holds what earlier filters recorded (JWT claims); nil for TCP.
	Stream *filter.Stream
}

// Allowed evaluates the engine. When it refuses, deniedBy is the name of
// the policy that refused (a DENY engine) or DefaultDeny (an ALLOW engine
// that no policy matched), and reply is the 403 to send.
func (e *Engine) Allowed(r *Request) (ok bool, deniedBy string, reply *filter.Reply) {
	for i := range e.policies {
		p := &e.policies[i]
		if !p.matches(r) {
			continue
		}
		if e.deny {
			return false, p.name, p.reply
		}
		return true, "", nil
	}
	if e.deny {
		return true, "", nil
	}
	return false, DefaultDeny, e.fallback
}

func (p *policy) matches(r *Request) bool {
	found := false
	for i := range p.permissions {
		if p.permissions[i].matches(r) {
			found = true
			break
		}
	}
	if !found {
		return false
	}
	for i := range p.principals {
		if p.principals[i].matches(r) {
			return true
		}
	}
	return false
}

// Compile checks and compiles an RBAC config. tcp refuses what only HTTP
// requests have (headers, paths, metadata), which a connection could never
// match. Errors start with the field path from rules.
func Compile(rules *rbacconfigv3.RBAC, tcp bool) (*Engine, error) {
	e := &Engine{}
	switch a := rules.GetAction(); a {
	case rbacconfigv3.RBAC_ALLOW:
	case rbacconfigv3.RBAC_DENY:
		e.deny = true
	default:
		return nil, fmt.Errorf("action: %v is not supported (ALLOW or DENY)", a)
	}
	c := compiler{tcp: tcp}
	names := make([]string, 0, len(rules.GetPolicies()))
	for name := range rules.GetPolicies() {
		names = append(names, name)
	}
	// Envoy does not order policies; sorting names the same policy every
	// time when several match.
	slices.Sort(names)
	for _, name := range names {
		pol := rules.GetPolicies()[name]
		path := fmt.Sprintf("policies[%q]", name)
		if len(pol.GetPermissions()) == 0 || len(pol.GetPrincipals()) == 0 {
			return nil, fmt.Errorf("%s: permissions and principals are required", path)
		}
		p := policy{name: name, reply: deniedReply(name)}
		for i, perm := range pol.GetPermissions() {
			cp, err := c.permission(perm, fmt.Sprintf("%s.permissions[%d]", path, i))
			if err != nil {
				return nil, err
			}
			p.permissions = append(p.permissions, cp)
		}
		for i, prin := range pol.GetPrincipals() {
			cp, err := c.principal(prin, fmt.Sprintf("%s.principals[%d]", path, i))
			if err != nil {
				return nil, err
			}
			p.principals = append(p.principals, cp)
		}
		e.policies = append(e.policies, p)
	}
	if !e.deny {
		e.fallback = deniedReply(DefaultDeny)
	}
	return e, nil
}

// deniedReply is the 403 of one policy, built once: replies are shared by
// every request they refuse and only read.
func deniedReply(name string) *filter.Reply {
	return &filter.Reply{
		Status: http.StatusForbidden,
		Body:   "RBAC: access denied",
		Reason: "rbac_access_denied_matched_policy[" + name + "]",
		Header: http.Header{DeniedByHeader: []string{name}},
	}
}

type compiler struct{ tcp bool }

// httpOnly refuses, in a network RBAC, a matcher that needs a request.
func (c compiler) httpOnly(path string) error {
	if c.tcp {
		return fmt.Errorf("%s: matches HTTP requests only, and this RBAC filters TCP connections", path)
	}
	return nil
}

// permissionKind says what a permission matches.
type permissionKind uint8

const (
	permAny permissionKind = iota
	permAnd
	permOr
	permNot
	permHeader
	permPath
)

type permission struct {
	kind   permissionKind
	rules  []permission
	header headerMatcher
	path   match.String
}

func (c compiler) permission(p *rbacconfigv3.Permission, path string) (permission, error) {
	switch r := p.GetRule().(type) {
	case *rbacconfigv3.Permission_Any:
		if !r.Any {
			return permission{}, fmt.Errorf("%s.any: must be true", path)
		}
		return permission{kind: permAny}, nil
	case *rbacconfigv3.Permission_AndRules:
		return c.permissionSet(permAnd, r.AndRules.GetRules(), path+".and_rules.rules")
	case *rbacconfigv3.Permission_OrRules:
		return c.permissionSet(permOr, r.OrRules.GetRules(), path+".or_rules.rules")
	case *rbacconfigv3.Permission_NotRule:
		inner, err := c.permission(r.NotRule, path+".not_rule")
		return permission{kind: permNot, rules: []permission{inner}}, err
	case *rbacconfigv3.Permission_Header:
		if err := c.httpOnly(path + ".header"); err != nil {
			return permission{}, err
		}
		h, err := compileHeader(r.Header, path+".header")
		return permission{kind: permHeader, header: h}, err
	case *rbacconfigv3.Permission_UrlPath:
		if err := c.httpOnly(path + ".url_path"); err != nil {
			return permission{}, err
		}
		sm, ok := r.UrlPath.GetRule().(*matcherv3.PathMatcher_Path)
		if !ok {
			return permission{}, fmt.Errorf("%s.url_path.path: is required", path)
		}
		m, err := compileString(sm.Path, path+".url_path.path")
		return permission{kind: permPath, path: m}, err
	}
	return permission{}, fmt.Errorf("%s: a rule is required (any, and_rules, or_rules, not_rule, header or url_path)", path)
}

func (c compiler) permissionSet(kind permissionKind, rules []*rbacconfigv3.Permission, path string) (permission, error) {
	if len(rules) == 0 {
		return permission{}, fmt.Errorf("%s: at least one rule is required", path)
	}
	p := permission{kind: kind}
	for i, r := range rules {
		cp, err := c.permission(r, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return permission{}, err
		}
		p.rules = append(p.rules, cp)
	}
	return p, nil
}

func (p *permission) matches(r *Request) bool {
	switch p.kind {
	case permAny:
		return true
	case permAnd:
		for i := range p.rules {
			if !p.rules[i].matches(r) {
				return false
			}
		}
		return true
	case permOr:
		for i := range p.rules {
			if p.rules[i].matches(r) {
				return true
			}
		}
		return false
	case permNot:
		return !p.rules[0].matches(r)
	case permHeader:
		return r.Header != nil && p.header.matches(r)
	case permPath:
		return r.Header != nil && p.path.Matches(r.Path)
	}
	return false
}

// principalKind says what a principal matches.
type principalKind uint8

const (
	prinAny principalKind = iota
	prinAnd
	prinOr
	prinNot
	prinAuthenticated
	prinMetadata
	prinHeader
)

type principal struct {
	kind principalKind
	ids  []principal
	// name is the SPIFFE ID matcher of authenticated; nil matches any
	// authenticated peer.
	name   *match.String
	meta   metadataMatcher
	header headerMatcher
}

func (c compiler) principal(p *rbacconfigv3.Principal, path string) (principal, error) {
	switch id := p.GetIdentifier().(type) {
	case *rbacconfigv3.Principal_Any:
		if !id.Any {
			return principal{}, fmt.Errorf("%s.any: must be true", path)
		}
		return principal{kind: prinAny}, nil
	case *rbacconfigv3.Principal_AndIds:
		return c.principalSet(prinAnd, id.AndIds.GetIds(), path+".and_ids.ids")
	case *rbacconfigv3.Principal_OrIds:
		return c.principalSet(prinOr, id.OrIds.GetIds(), path+".or_ids.ids")
	case *rbacconfigv3.Principal_NotId:
		inner, err := c.principal(id.NotId, path+".not_id")
		return principal{kind: prinNot, ids: []principal{inner}}, err
	case *rbacconfigv3.Principal_Authenticated_:
		out := principal{kind: prinAuthenticated}
		if n := id.Authenticated.GetPrincipalName(); n != nil {
			m, err := compileString(n, path+".authenticated.principal_name")
			if err != nil {
				return principal{}, err
			}
			out.name = &m
		}
		return out, nil
	case *rbacconfigv3.Principal_Header:
		if err := c.httpOnly(path + ".header"); err != nil {
			return principal{}, err
		}
		h, err := compileHeader(id.Header, path+".header")
		return principal{kind: prinHeader, header: h}, err
	case *rbacconfigv3.Principal_Metadata:
		if err := c.httpOnly(path + ".metadata"); err != nil {
			return principal{}, err
		}
		m, err := compileMetadata(id.Metadata, path+".metadata")
		return principal{kind: prinMetadata, meta: m}, err
	}
	return principal{}, fmt.Errorf("%s: an identifier is required (any, and_ids, or_ids, not_id, authenticated, header or metadata)", path)
}

func (c compiler) principalSet(kind principalKind, ids []*rbacconfigv3.Principal, path string) (principal, error) {
	if len(ids) == 0 {
		return principal{}, fmt.Errorf("%s: at least one identifier is required", path)
	}
	p := principal{kind: kind}
	for i, id := range ids {
		cp, err := c.principal(id, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return principal{}, err
		}
		p.ids = append(p.ids, cp)
	}
	return p, nil
}

func (p *principal) matches(r *Request) bool {
	switch p.kind {
	case prinAny:
		return true
	case prinAnd:
		for i := range p.ids {
			if !p.ids[i].matches(r) {
				return false
			}
		}
		return true
	case prinOr:
		for i := range p.ids {
			if p.ids[i].matches(r) {
				return true
			}
		}
		return false
	case prinNot:
		return !p.ids[0].matches(r)
	case prinAuthenticated:
		if !r.Authenticated {
			return false
		}
		return p.name == nil || (r.Peer != "" && p.name.Matches(r.Peer))
	case prinHeader:
		return r.Header != nil && p.header.matches(r)
	case prinMetadata:
		return r.Stream != nil && p.meta.matches(r.Stream)
	}
	return false
}

// match.String is a compiled StringMatcher.
// compileString compiles a StringMatcher (proxy/match, shared with route
// matching, so that a matcher means the same thing to both).
func compileString(m *matcherv3.StringMatcher, path string) (match.String, error) {
	return match.Compile(m, path)
}

// headerMatcher is a compiled HeaderMatcher.
type headerMatcher struct {
	// name is the canonical header key, or a pseudo-header.
	name    string
	present bool // present_match, else value
	value   match.String
	invert  bool
}

func compileHeader(h *routev3.HeaderMatcher, path string) (headerMatcher, error) {
	out := headerMatcher{invert: h.GetInvertMatch()}
	switch n := h.GetName(); {
	case n == ":method" || n == ":authority":
		out.name = n
	case n == "" || strings.HasPrefix(n, ":"):
		return out, fmt.Errorf("%s.name: %q is not supported (a header, :method or :authority)", path, n)
	default:
		out.name = http.CanonicalHeaderKey(n)
	}
	switch m := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		if !m.PresentMatch {
			return out, fmt.Errorf("%s.present_match: must be true (use invert_match)", path)
		}
		out.present = true
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := compileString(m.StringMatch, path+".string_match")
		if err != nil {
			return out, err
		}
		out.value = sm
	default:
		return out, fmt.Errorf("%s: string_match or present_match is required", path)
	}
	return out, nil
}

func (h *headerMatcher) matches(r *Request) bool {
	var v string
	var present bool
	switch h.name {
	case ":method":
		v, present = r.Method, true
	case ":authority":
		v, present = r.Host, true
	default:
		vs := r.Header[h.name]
		present = len(vs) > 0
		switch len(vs) {
		case 0:
		case 1:
			v = vs[0]
		default:
			// Several values are matched joined, as Envoy does.
			v = strings.Join(vs, ",")
		}
	}
	var ok bool
	if h.present {
		ok = present
	} else {
		ok = present && h.value.Matches(v)
	}
	return ok != h.invert
}

// metadataMatcher is a compiled MetadataMatcher on dynamic metadata.
type metadataMatcher struct {
	filter string
	path   []string
	value  valueMatcher
}

type valueMatcher struct {
	present bool
	str     *match.String
	// oneOf, set for a list_match, matches a list holding a matching element.
	oneOf *valueMatcher
}

func compileMetadata(m *matcherv3.MetadataMatcher, path string) (metadataMatcher, error) {
	out := metadataMatcher{filter: m.GetFilter()}
	if out.filter == "" {
		return out, fmt.Errorf("%s.filter: is required", path)
	}
	if m.GetInvert() {
		return out, fmt.Errorf("%s.invert: is not supported (use not_id)", path)
	}
	if len(m.GetPath()) == 0 {
		return out, fmt.Errorf("%s.path: at least one key is required", path)
	}
	for i, seg := range m.GetPath() {
		if seg.GetKey() == "" {
			return out, fmt.Errorf("%s.path[%d].key: is required", path, i)
		}
		out.path = append(out.path, seg.GetKey())
	}
	v, err := compileValue(m.GetValue(), path+".value", true)
	out.value = v
	return out, err
}

func compileValue(v *matcherv3.ValueMatcher, path string, listOK bool) (valueMatcher, error) {
	switch p := v.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_PresentMatch:
		if !p.PresentMatch {
			return valueMatcher{}, fmt.Errorf("%s.present_match: must be true", path)
		}
		return valueMatcher{present: true}, nil
	case *matcherv3.ValueMatcher_StringMatch:
		sm, err := compileString(p.StringMatch, path+".string_match")
		return valueMatcher{str: &sm}, err
	case *matcherv3.ValueMatcher_ListMatch:
		if !listOK {
			return valueMatcher{}, fmt.Errorf("%s.list_match: lists of lists are not supported", path)
		}
		inner, err := compileValue(p.ListMatch.GetOneOf(), path+".list_match.one_of", false)
		return valueMatcher{oneOf: &inner}, err
	}
	return valueMatcher{}, fmt.Errorf("%s: present_match, string_match or list_match is required", path)
}

func (m *metadataMatcher) matches(s *filter.Stream) bool {
	root, ok := s.Metadata(m.filter)
	if !ok {
		return false
	}
	v := root
	for _, key := range m.path {
		obj, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = obj[key]; !ok {
			return false
		}
	}
	return m.value.matches(v)
}

func (m *valueMatcher) matches(v any) bool {
	switch {
	case v == nil:
		return false
	case m.present:
		return true
	case m.str != nil:
		s, ok := v.(string)
		return ok && m.str.Matches(s)
	case m.oneOf != nil:
		list, ok := v.([]any)
		if !ok {
			return false
		}
		for _, e := range list {
			if m.oneOf.matches(e) {
				return true
			}
		}
	}
	return false
}
