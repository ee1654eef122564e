// Package jwt is Envoy's JWT authentication filter
// (envoy.filters.http.jwt_authn): it verifies the end user's JSON Web Token
// against the configured providers (issuer, audiences, RS256 or ES256 keys
// from an inline or remote JWKS) as the first matching rule requires, and
// records the verified claims in the request's metadata for the filters
// after it. A token that fails gets a 401 with a www-authenticate challenge.
package jwt

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/filter"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/xdswire"
)

// Name is the filter's name in http_filters, and the key of its record in
// a request's metadata: {payload_in_metadata: claims} for each provider
// that verified the token. The claims map is shared; readers must not
// modify it.
const Name = xdsmeta.JWTFilter

// defaultClockSkew is Envoy's clock_skew_seconds default.
const defaultClockSkew = 60 * time.Second

func init() {
	filter.Register(filter.Factory{
		Name:   Name,
		Config: &jwtv3.JwtAuthentication{},
		New: func(cfg proto.Message, env filter.Env) (filter.HTTP, error) {
			return New(cfg.(*jwtv3.JwtAuthentication), env)
		},
	})
}

// Filter is the JWT filter of one connection manager.
type Filter struct {
	providers []*provider
	// rules picks the requirement of a request: the first rule whose match
	// fits it. A request that none fits is not checked.
	rules *route.Table[*requirement]
	cache *tokenCache
	now   func() time.Time
}

// provider is a compiled JwtProvider.
type provider struct {
	index     int
	issuer    string
	audiences []string
	local     *keySet
	remote    *remoteKeys
	headers   []tokenHeader
	params    []string
	forward   bool
	// payloadKey is payload_in_metadata: where the claims are recorded,
	// or "" for nowhere.
	payloadKey string
	skew       time.Duration
}

type tokenHeader struct {
	name, prefix string // name canonical
}

// reqKind is the kind of a requirement.
type reqKind uint8

const (
	reqProvider reqKind = iota
	reqAny
	reqAll
	reqAllowMissing
	reqAllowMissingOrFailed
	reqNone // the empty requirement: nothing to check
)

// requirement is a compiled JwtRequirement.
type requirement struct {
	kind     reqKind
	provider *provider
	children []*requirement
}

// New compiles a JwtAuthentication. Errors name the field.
func New(c *jwtv3.JwtAuthentication, env filter.Env) (*Filter, error) {
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Filter{cache: newTokenCache(), now: time.Now}
	roots, err := jwksRoots(env)
	if err != nil {
		return nil, err
	}
	byName := map[string]*provider{}
	names := slices.Sorted(maps.Keys(c.GetProviders()))
	if len(names) > maxProviders {
		return nil, fmt.Errorf("providers: %d are more than the %d supported", len(names), maxProviders)
	}
	for i, name := range names {
		p, err := compileProvider(name, c.GetProviders()[name], roots[name], log)
		if err != nil {
			return nil, err
		}
		p.index = i
		byName[name] = p
		f.providers = append(f.providers, p)
	}
	for name := range roots {
		if p := byName[name]; p == nil || p.remote == nil {
			return nil, fmt.Errorf("filter chain metadata %s.%s[%q]: no provider of that name fetches a remote_jwks", Name, xdsmeta.JWKSCAKey, name)
		}
	}

	named := map[string]*requirement{}
	for _, name := range slices.Sorted(maps.Keys(c.GetRequirementMap())) {
		req, err := compileRequirement(c.GetRequirementMap()[name], byName, fmt.Sprintf("requirement_map[%q]", name), 0)
		if err != nil {
			return nil, err
		}
		named[name] = req
	}
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "rules", Domains: []string{"*"}}}}
	targets := make([]*requirement, len(c.GetRules()))
	for i, rule := range c.GetRules() {
		path := fmt.Sprintf("rules[%d]", i)
		if rule.GetMatch() == nil {
			return nil, fmt.Errorf("%s.match: is required", path)
		}
		switch rt := rule.GetRequirementType().(type) {
		case *jwtv3.RequirementRule_Requires:
			if targets[i], err = compileRequirement(rt.Requires, byName, path+".requires", 0); err != nil {
				return nil, err
			}
		case *jwtv3.RequirementRule_RequirementName:
			if targets[i] = named[rt.RequirementName]; targets[i] == nil {
				return nil, fmt.Errorf("%s.requirement_name: %q is not in requirement_map", path, rt.RequirementName)
			}
		default:
			// No requirement: the matched requests are not checked.
			targets[i] = &requirement{kind: reqNone}
		}
		rc.VirtualHosts[0].Routes = append(rc.VirtualHosts[0].Routes, &routev3.Route{
			Match:  rule.GetMatch(),
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: strconv.Itoa(i)}}},
		})
	}
	f.rules, err = route.Compile(rc, func(cluster string) *requirement {
		i, _ := strconv.Atoi(cluster)
		return targets[i]
	})
	if err != nil {
		var fe *xdswire.FieldError
		if errors.As(err, &fe) {
			// virtual_hosts[0].routes[i].match... is rules[i].match...
			if rest, ok := strings.CutPrefix(fe.Path, "virtual_hosts[0].routes"); ok {
				return nil, fmt.Errorf("rules%s: %w", rest, fe.Err)
			}
		}
		return nil, fmt.Errorf("rules: %w", err)
	}
	return f, nil
}

// jwksRoots reads the roots of remote key sets from the filter chain's
// metadata: PEM by provider name.
func jwksRoots(env filter.Env) (map[string]string, error) {
	md := env.Metadata
	if md == nil {
		return nil, nil
	}
	at := fmt.Sprintf("filter chain metadata %s", Name)
	roots := map[string]string{}
	for k, v := range md.GetFields() {
		if k != xdsmeta.JWKSCAKey {
			return nil, fmt.Errorf("%s.%s: is not supported (only %s)", at, k, xdsmeta.JWKSCAKey)
		}
		s := v.GetStructValue()
		if s == nil {
			return nil, fmt.Errorf("%s.%s: must map provider names to PEM", at, k)
		}
		for name, pemText := range s.GetFields() {
			if _, isStr := pemText.GetKind().(*structpb.Value_StringValue); !isStr {
				return nil, fmt.Errorf("%s.%s[%q]: must be a PEM string", at, k, name)
			}
			roots[name] = pemText.GetStringValue()
		}
	}
	return roots, nil
}

// maxRequirementDepth bounds the nesting of requires_any and requires_all.
const maxRequirementDepth = 8

func compileRequirement(r *jwtv3.JwtRequirement, providers map[string]*provider, path string, depth int) (*requirement, error) {
	if depth > maxRequirementDepth {
		return nil, fmt.Errorf("%s: nested more than %d deep", path, maxRequirementDepth)
	}
	list := func(reqs []*jwtv3.JwtRequirement, kind reqKind, field string) (*requirement, error) {
		if len(reqs) < 2 {
			return nil, fmt.Errorf("%s.%s.requirements: at least 2 are required", path, field)
		}
		out := &requirement{kind: kind}
		for i, c := range reqs {
			cr, err := compileRequirement(c, providers, fmt.Sprintf("%s.%s.requirements[%d]", path, field, i), depth+1)
			if err != nil {
				return nil, err
			}
			out.children = append(out.children, cr)
		}
		return out, nil
	}
	switch rt := r.GetRequiresType().(type) {
	case nil:
		return &requirement{kind: reqNone}, nil
	case *jwtv3.JwtRequirement_ProviderName:
		p := providers[rt.ProviderName]
		if p == nil {
			return nil, fmt.Errorf("%s.provider_name: %q is not in providers", path, rt.ProviderName)
		}
		return &requirement{kind: reqProvider, provider: p}, nil
	case *jwtv3.JwtRequirement_RequiresAny:
		return list(rt.RequiresAny.GetRequirements(), reqAny, "requires_any")
	case *jwtv3.JwtRequirement_RequiresAll:
		return list(rt.RequiresAll.GetRequirements(), reqAll, "requires_all")
	case *jwtv3.JwtRequirement_AllowMissing:
		return &requirement{kind: reqAllowMissing}, nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return &requirement{kind: reqAllowMissingOrFailed}, nil
	default:
		return nil, fmt.Errorf("%s: %T is not supported", path, rt)
	}
}

func compileProvider(name string, p *jwtv3.JwtProvider, roots string, log *slog.Logger) (*provider, error) {
	path := fmt.Sprintf("providers[%q]", name)
	out := &provider{
		issuer:     p.GetIssuer(),
		audiences:  p.GetAudiences(),
		forward:    p.GetForward(),
		payloadKey: p.GetPayloadInMetadata(),
		params:     p.GetFromParams(),
		skew:       defaultClockSkew,
	}
	if s := p.GetClockSkewSeconds(); s > 0 {
		out.skew = time.Duration(s) * time.Second
	}
	for i, h := range p.GetFromHeaders() {
		if h.GetName() == "" {
			return nil, fmt.Errorf("%s.from_headers[%d].name: is required", path, i)
		}
		out.headers = append(out.headers, tokenHeader{name: http.CanonicalHeaderKey(h.GetName()), prefix: h.GetValuePrefix()})
	}
	if len(out.headers) == 0 && len(out.params) == 0 {
		// Envoy's default locations.
		out.headers = []tokenHeader{{name: "Authorization", prefix: "Bearer "}}
		out.params = []string{"access_token"}
	}
	switch src := p.GetJwksSourceSpecifier().(type) {
	case *jwtv3.JwtProvider_LocalJwks:
		var data []byte
		switch ds := src.LocalJwks.GetSpecifier().(type) {
		case *corev3.DataSource_InlineString:
			data = []byte(ds.InlineString)
		case *corev3.DataSource_InlineBytes:
			data = ds.InlineBytes
		default:
			return nil, fmt.Errorf("%s.local_jwks: inline_string or inline_bytes is required", path)
		}
		keys, err := parseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("%s.local_jwks: %w", path, err)
		}
		out.local = keys
	case *jwtv3.JwtProvider_RemoteJwks:
		rpath := path + ".remote_jwks"
		uri := src.RemoteJwks.GetHttpUri()
		u, err := url.Parse(uri.GetUri())
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("%s.http_uri.uri: %q is not an https URL", rpath, uri.GetUri())
		}
		timeout := time.Second // Envoy's http_uri.timeout is required; 1s is its examples' value.
		if t := uri.GetTimeout(); t != nil {
			if timeout = t.AsDuration(); timeout <= 0 {
				return nil, fmt.Errorf("%s.http_uri.timeout: must be positive", rpath)
			}
		}
		cache := 10 * time.Minute // Envoy's default cache_duration
		if d := src.RemoteJwks.GetCacheDuration(); d != nil {
			if cache = d.AsDuration(); cache <= 0 {
				return nil, fmt.Errorf("%s.cache_duration: must be positive", rpath)
			}
		}
		var pool *x509.CertPool
		if roots != "" {
			pool = x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(roots)) {
				return nil, fmt.Errorf("filter chain metadata %s.%s[%q]: holds no PEM certificate", Name, xdsmeta.JWKSCAKey, name)
			}
		}
		out.remote = sharedRemoteKeys(sourceKey{uri: uri.GetUri(), roots: roots, cache: cache, timeout: timeout}, pool, log)
	default:
		return nil, fmt.Errorf("%s: local_jwks or remote_jwks is required", path)
	}
	return out, nil
}

// DecodeHeaders checks the request's token as its rule requires.
func (f *Filter) DecodeHeaders(r *http.Request, s *filter.Stream, _ any) filter.Decision {
	rt := f.rules.MatchRequest(&route.Request{Host: r.Host, Path: requestPath(r), Method: r.Method, Header: r.Header})
	if rt == nil || rt.Target.kind == reqNone {
		return filter.Continue
	}
	c := check{f: f, r: r, ctx: r.Context(), now: f.now()}
	if fail := c.eval(rt.Target); fail != nil {
		return filter.Decision{Reply: fail.reply}
	}
	if len(c.verified) == 0 {
		return filter.Continue
	}
	var md map[string]any
	for i := range c.verified {
		v := &c.verified[i]
		if v.p.payloadKey != "" {
			if md == nil {
				md = make(map[string]any, 1)
			}
			md[v.p.payloadKey] = v.claims
		}
		if !v.p.forward {
			v.loc.strip(r)
		}
	}
	if md != nil {
		s.SetMetadata(Name, md)
	}
	return filter.Continue
}

// requestPath is the request target in origin form, query included.
func requestPath(r *http.Request) string {
	if p := r.RequestURI; p != "" && p[0] == '/' {
		return p
	}
	return r.URL.RequestURI()
}

// location is where a token was found.
type location struct {
	header string // canonical header name, or ""
	param  string // query parameter name, or ""
}

// strip removes the token from the request, as Envoy does when forward is
// false: the whole header, or the query parameter.
func (l location) strip(r *http.Request) {
	if l.header != "" {
		r.Header.Del(l.header)
		return
	}
	// The other parameters keep their order and encoding.
	var kept []string
	for _, kv := range strings.Split(r.URL.RawQuery, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if name, err := url.QueryUnescape(k); err == nil && name == l.param {
			continue
		}
		kept = append(kept, kv)
	}
	r.URL.RawQuery = strings.Join(kept, "&")
}

// check is the verification of one request.
type check struct {
	f   *Filter
	r   *http.Request
	ctx context.Context
	now time.Time
	// results memoises each provider's outcome: done, then fail or ok.
	results [maxProviders]result
	// parsed memoises the last token parsed: providers often share one.
	parsedRaw string
	parsed    *token
	parseFail *failure
	verified  []success
}

// maxProviders bounds the providers of a filter, so that a check's
// memory is fixed.
const maxProviders = 32

type result struct {
	done bool
	fail *failure
}

type success struct {
	p      *provider
	claims map[string]any
	loc    location
}

func (c *check) eval(r *requirement) *failure {
	switch r.kind {
	case reqProvider:
		return c.provider(r.provider)
	case reqAny:
		var fail *failure
		for _, ch := range r.children {
			e := c.eval(ch)
			if e == nil {
				return nil
			}
			fail = worse(fail, e)
		}
		return fail
	case reqAll:
		for _, ch := range r.children {
			if e := c.eval(ch); e != nil {
				return e
			}
		}
		return nil
	case reqAllowMissing:
		// No token anywhere is fine; a token must be valid for one of
		// the providers.
		var fail *failure
		for _, p := range c.f.providers {
			e := c.provider(p)
			if e == nil {
				return nil
			}
			fail = worse(fail, e)
		}
		if fail == errMissing {
			return nil
		}
		return fail
	case reqAllowMissingOrFailed:
		for _, p := range c.f.providers {
			c.provider(p)
		}
		return nil
	}
	return nil
}

// provider verifies the request's token for p, once per request.
func (c *check) provider(p *provider) *failure {
	res := &c.results[p.index]
	if !res.done {
		res.done = true
		res.fail = c.verify(p)
	}
	return res.fail
}

func (c *check) verify(p *provider) *failure {
	raw, loc, ok := extract(c.r, p)
	if !ok {
		return errMissing
	}
	ck := cacheKey{provider: p, raw: raw}
	if v, ok := c.f.cache.get(ck, c.now); ok {
		c.verified = append(c.verified, success{p: p, claims: v.claims, loc: loc})
		return nil
	}
	if raw != c.parsedRaw || (c.parsed == nil && c.parseFail == nil) {
		c.parsedRaw = raw
		c.parsed, c.parseFail = parseToken(raw)
	}
	if c.parseFail != nil {
		return c.parseFail
	}
	t := c.parsed
	if p.issuer != "" && t.iss != p.issuer {
		return errWrongIssuer
	}
	keys := p.local
	if p.remote != nil {
		var fail *failure
		if keys, fail = p.remote.get(c.ctx, t.alg, t.kid); fail != nil {
			return fail
		}
	}
	var buf [4]*key
	candidates := keys.find(t.alg, t.kid, buf[:0])
	if len(candidates) == 0 {
		return errUnknownKey
	}
	if !slices.ContainsFunc(candidates, t.verify) {
		return errBadSignature
	}
	if fail := t.checkTime(c.now, p.skew); fail != nil {
		return fail
	}
	if len(p.audiences) > 0 && !slices.ContainsFunc(t.aud, func(a string) bool { return slices.Contains(p.audiences, a) }) {
		return errWrongAudience
	}
	until := c.now.Add(maxCacheAge)
	if exp := t.expiry(p.skew); !exp.IsZero() && exp.Before(until) {
		until = exp
	}
	c.f.cache.put(ck, verified{claims: t.claims, until: until})
	c.verified = append(c.verified, success{p: p, claims: t.claims, loc: loc})
	return nil
}

// extract finds p's token in the request: in the first of its headers
// that carries one, else in the first of its query parameters.
func extract(r *http.Request, p *provider) (raw string, loc location, ok bool) {
	for _, h := range p.headers {
		for _, v := range r.Header[h.name] {
			if len(v) < len(h.prefix) || !strings.EqualFold(v[:len(h.prefix)], h.prefix) {
				continue
			}
			if tok := strings.TrimSpace(v[len(h.prefix):]); tok != "" {
				return tok, location{header: h.name}, true
			}
		}
	}
	if len(p.params) > 0 && r.URL.RawQuery != "" {
		q := r.URL.Query()
		for _, name := range p.params {
			if tok := q.Get(name); tok != "" {
				return tok, location{param: name}, true
			}
		}
	}
	return "", location{}, false
}

var _ filter.HTTP = (*Filter)(nil)
