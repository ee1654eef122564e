package jwt

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/weftmesh/weft/proxy/filter"
)

var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func localProvider(issuer string, keys string, audiences ...string) *jwtv3.JwtProvider {
	return &jwtv3.JwtProvider{
		Issuer:            issuer,
		Audiences:         audiences,
		PayloadInMetadata: "payload",
		JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: keys},
		}},
	}
}

func providerReq(name string) *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}}
}

func anyReq(reqs ...*jwtv3.JwtRequirement) *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: reqs}}}
}

var allowMissing = &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}

func prefixRule(prefix, requirement string) *jwtv3.RequirementRule {
	return &jwtv3.RequirementRule{
		Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		RequirementType: &jwtv3.RequirementRule_RequirementName{RequirementName: requirement},
	}
}

// shopConfig is what the translator makes of a RequestAuth with two
// issuers, /admin required and everything else optional.
func shopConfig(rs, ec *signer) *jwtv3.JwtAuthentication {
	return &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{
			"issuer-0": localProvider("https://auth.shop.example", jwks(rs), "catalog"),
			"issuer-1": localProvider("partner", jwks(ec)),
		},
		RequirementMap: map[string]*jwtv3.JwtRequirement{
			"required": anyReq(providerReq("issuer-0"), providerReq("issuer-1")),
			"optional": anyReq(providerReq("issuer-0"), providerReq("issuer-1"), allowMissing),
		},
		Rules: []*jwtv3.RequirementRule{prefixRule("/admin", "required"), prefixRule("/", "optional")},
	}
}

func newTestFilter(t testing.TB, c *jwtv3.JwtAuthentication) *Filter {
	t.Helper()
	f, err := New(c, filter.Env{})
	if err != nil {
		t.Fatal(err)
	}
	f.now = func() time.Time { return testNow }
	return f
}

func claims(iss string, aud any, exp time.Time, extra ...any) map[string]any {
	c := map[string]any{"iss": iss, "sub": "alice", "exp": exp.Unix()}
	if aud != nil {
		c["aud"] = aud
	}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i].(string)] = extra[i+1]
	}
	return c
}

func request(path, token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

func TestDecodeHeaders(t *testing.T) {
	rs, ec := newRSASigner(t, "rs-1"), newECSigner(t, "ec-1")
	other := newRSASigner(t, "rs-1") // same kid, another key
	f := newTestFilter(t, shopConfig(rs, ec))
	hour := testNow.Add(time.Hour)
	shop := "https://auth.shop.example"

	tests := []struct {
		name   string
		path   string
		token  string
		reason string // "" for a request let through
		claims bool   // whether claims are recorded
	}{
		{name: "RS256 on a required path", path: "/admin/users", token: rs.mint(t, claims(shop, "catalog", hour, "group", "admins")), claims: true},
		{name: "ES256 on a required path", path: "/admin", token: ec.mint(t, claims("partner", nil, hour)), claims: true},
		{name: "audience in a list", path: "/admin", token: rs.mint(t, claims(shop, []string{"x", "catalog"}, hour)), claims: true},
		{name: "missing on a required path", path: "/admin", reason: "jwt_missing"},
		{name: "missing on an optional path", path: "/catalog"},
		{name: "segment boundaries are the rule's", path: "/administrator", reason: "jwt_missing"},
		{name: "invalid on an optional path", path: "/catalog", token: other.mint(t, claims(shop, "catalog", hour)), reason: "jwt_invalid_signature"},
		{name: "wrong issuer", path: "/admin", token: rs.mint(t, claims("https://evil.example", "catalog", hour)), reason: "jwt_wrong_issuer"},
		{name: "wrong audience", path: "/admin", token: rs.mint(t, claims(shop, "billing", hour)), reason: "jwt_wrong_audience"},
		{name: "no audience", path: "/admin", token: rs.mint(t, claims(shop, nil, hour)), reason: "jwt_wrong_audience"},
		{name: "expired", path: "/admin", token: rs.mint(t, claims(shop, "catalog", testNow.Add(-2*time.Minute))), reason: "jwt_expired"},
		{name: "expired within the skew", path: "/admin", token: rs.mint(t, claims(shop, "catalog", testNow.Add(-30*time.Second))), claims: true},
		{name: "not yet valid", path: "/admin", token: rs.mint(t, claims(shop, "catalog", hour, "nbf", testNow.Add(5*time.Minute).Unix())), reason: "jwt_not_yet_valid"},
		{name: "unknown kid", path: "/admin", token: newRSASigner(t, "rs-2").mint(t, claims(shop, "catalog", hour)), reason: "jwt_unknown_key"},
		{name: "malformed", path: "/admin", token: "a.b", reason: "jwt_malformed"},
		{name: "alg none", path: "/admin", token: b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{"iss":"partner"}`)) + ".", reason: "jwt_unsupported_alg"},
		{name: "string exp", path: "/admin", token: rs.mint(t, map[string]any{"iss": shop, "aud": "catalog", "exp": "soon"}), reason: "jwt_malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(tt.path, tt.token)
			var s filter.Stream
			d := f.DecodeHeaders(r, &s, nil)
			md, hasMD := s.Metadata(Name)
			if tt.reason == "" {
				if d.Reply != nil {
					t.Fatalf("refused with %d %s (%s), want it let through", d.Reply.Status, d.Reply.Reason, d.Reply.Body)
				}
				if hasMD != tt.claims {
					t.Fatalf("metadata recorded = %v, want %v", hasMD, tt.claims)
				}
				if tt.claims {
					payload := md.(map[string]any)["payload"].(map[string]any)
					if payload["sub"] != "alice" {
						t.Errorf("payload = %v, want the token's claims", payload)
					}
					if r.Header.Get("Authorization") != "" {
						t.Error("the token was forwarded; forward is false")
					}
				}
				return
			}
			if d.Reply == nil {
				t.Fatal("let through, want a 401")
			}
			if d.Reply.Status != http.StatusUnauthorized || d.Reply.Reason != tt.reason {
				t.Errorf("reply %d %s, want 401 %s", d.Reply.Status, d.Reply.Reason, tt.reason)
			}
			ch := d.Reply.Header.Get("Www-Authenticate")
			want := `Bearer error="invalid_token", error_description="` + d.Reply.Body + `"`
			if tt.reason == "jwt_missing" {
				want = "Bearer" // RFC 6750: no error for a request without a token
			}
			if ch != want {
				t.Errorf("www-authenticate = %q, want %q", ch, want)
			}
			if hasMD {
				t.Error("claims recorded for a refused request")
			}
		})
	}
}

// TestTokenLocations: tokens from a custom header with a prefix and from a
// query parameter; forward keeps the token, the default strips it.
func TestTokenLocations(t *testing.T) {
	ec := newECSigner(t, "ec-1")
	p := localProvider("partner", jwks(ec))
	p.FromHeaders = []*jwtv3.JwtHeader{{Name: "x-partner-token", ValuePrefix: "Token "}}
	p.FromParams = []string{"token"}
	fwd := localProvider("forwarded", jwks(ec))
	fwd.Forward = true
	f := newTestFilter(t, &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"p": p, "fwd": fwd},
		Rules: []*jwtv3.RequirementRule{{
			Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: anyReq(providerReq("p"), providerReq("fwd"))},
		}},
	})
	tok := ec.mint(t, claims("partner", nil, testNow.Add(time.Hour)))

	r := request("/", "")
	r.Header.Set("X-Partner-Token", "token "+tok)
	if d := f.DecodeHeaders(r, &filter.Stream{}, nil); d.Reply != nil {
		t.Fatalf("header with prefix: %s", d.Reply.Reason)
	}
	if r.Header.Get("X-Partner-Token") != "" {
		t.Error("header token not stripped")
	}

	r = request("/search?z=1&token="+tok+"&a=%20", "")
	if d := f.DecodeHeaders(r, &filter.Stream{}, nil); d.Reply != nil {
		t.Fatalf("query parameter: %s", d.Reply.Reason)
	}
	if got := r.URL.RawQuery; got != "z=1&a=%20" {
		t.Errorf("query after stripping = %q, want z=1&a=%%20", got)
	}

	r = request("/", "")
	r.Header.Set("X-Partner-Token", "Bearer "+tok)
	if d := f.DecodeHeaders(r, &filter.Stream{}, nil); d.Reply == nil || d.Reply.Reason != "jwt_missing" {
		t.Errorf("wrong prefix: %+v, want jwt_missing", d.Reply)
	}

	ftok := ec.mint(t, claims("forwarded", nil, testNow.Add(time.Hour)))
	r = request("/", ftok)
	if d := f.DecodeHeaders(r, &filter.Stream{}, nil); d.Reply != nil {
		t.Fatalf("forwarded: %s", d.Reply.Reason)
	}
	if r.Header.Get("Authorization") != "Bearer "+ftok {
		t.Error("forward: true stripped the token")
	}
}

// TestCacheHonoursExp: a verified token is served from the cache, but not
// past its exp.
func TestCacheHonoursExp(t *testing.T) {
	rs, ec := newRSASigner(t, "rs-1"), newECSigner(t, "ec-1")
	f := newTestFilter(t, shopConfig(rs, ec))
	tok := rs.mint(t, claims("https://auth.shop.example", "catalog", testNow.Add(10*time.Second)))
	for i := range 2 {
		if d := f.DecodeHeaders(request("/admin", tok), &filter.Stream{}, nil); d.Reply != nil {
			t.Fatalf("try %d: %s", i, d.Reply.Reason)
		}
	}
	if _, ok := f.cache.get(cacheKey{provider: f.providers[0], raw: tok}, testNow); !ok {
		t.Fatal("a verified token is not cached")
	}
	f.now = func() time.Time { return testNow.Add(10*time.Second + defaultClockSkew + time.Second) }
	if d := f.DecodeHeaders(request("/admin", tok), &filter.Stream{}, nil); d.Reply == nil || d.Reply.Reason != "jwt_expired" {
		t.Fatalf("after exp: %+v, want jwt_expired", d.Reply)
	}
}

func TestTokenCacheEvicts(t *testing.T) {
	c := newTokenCache()
	p := &provider{}
	for i := range tokenCacheSize + 10 {
		c.put(cacheKey{provider: p, raw: strings.Repeat("x", i)}, verified{until: testNow.Add(time.Hour)})
	}
	if len(c.entries) != tokenCacheSize {
		t.Fatalf("%d entries, want %d", len(c.entries), tokenCacheSize)
	}
	if _, ok := c.get(cacheKey{provider: p, raw: ""}, testNow); ok {
		t.Error("the least recently used entry was kept")
	}
	if _, ok := c.get(cacheKey{provider: p, raw: strings.Repeat("x", tokenCacheSize+9)}, testNow); !ok {
		t.Error("the newest entry was evicted")
	}
}

func TestNewRejects(t *testing.T) {
	ec := newECSigner(t, "ec-1")
	good := localProvider("partner", jwks(ec))
	tests := []struct {
		name string
		cfg  *jwtv3.JwtAuthentication
		want string
	}{
		{
			name: "unknown provider",
			cfg:  &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": good}, RequirementMap: map[string]*jwtv3.JwtRequirement{"r": providerReq("q")}},
			want: `requirement_map["r"].provider_name: "q" is not in providers`,
		},
		{
			name: "unknown requirement name",
			cfg:  &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": good}, Rules: []*jwtv3.RequirementRule{prefixRule("/", "nope")}},
			want: `rules[0].requirement_name: "nope" is not in requirement_map`,
		},
		{
			name: "bad local keys",
			cfg:  &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": localProvider("x", `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`)}},
			want: `providers["p"].local_jwks: keys[0] (kid ""): RSA modulus of 17 bits`,
		},
		{
			name: "plain http key set",
			cfg: &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": {JwksSourceSpecifier: &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
				HttpUri: &corev3.HttpUri{Uri: "http://idp/keys", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "c"}},
			}}}}},
			want: `providers["p"].remote_jwks.http_uri.uri: "http://idp/keys" is not an https URL`,
		},
		{
			name: "bad rule match",
			cfg: &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": good}, Rules: []*jwtv3.RequirementRule{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}},
			}}},
			want: "rules[0].match",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, filter.Env{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestRequirementKinds: requires_all needs every provider's token,
// allow_missing_or_failed lets anything through but records a valid
// token's claims, and a rule without a requirement checks nothing.
func TestRequirementKinds(t *testing.T) {
	rs, ec := newRSASigner(t, "rs-1"), newECSigner(t, "ec-1")
	a := localProvider("a", jwks(rs))
	b := localProvider("b", jwks(ec))
	b.FromHeaders = []*jwtv3.JwtHeader{{Name: "x-b-token"}}
	b.PayloadInMetadata = "b"
	all := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{RequiresAll: &jwtv3.JwtRequirementAndList{
		Requirements: []*jwtv3.JwtRequirement{providerReq("a"), providerReq("b")},
	}}}
	loose := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissingOrFailed{AllowMissingOrFailed: &emptypb.Empty{}}}
	f := newTestFilter(t, &jwtv3.JwtAuthentication{
		Providers:      map[string]*jwtv3.JwtProvider{"a": a, "b": b},
		RequirementMap: map[string]*jwtv3.JwtRequirement{"all": all, "loose": loose},
		Rules: []*jwtv3.RequirementRule{
			prefixRule("/both", "all"),
			prefixRule("/loose", "loose"),
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/open"}}},
		},
	})
	hour := testNow.Add(time.Hour)
	ta, tb := rs.mint(t, claims("a", nil, hour)), ec.mint(t, claims("b", nil, hour))
	send := func(path string, withA, withB bool) (filter.Decision, map[string]any) {
		r := request(path, "")
		if withA {
			r.Header.Set("Authorization", "Bearer "+ta)
		}
		if withB {
			r.Header.Set("X-B-Token", tb)
		}
		var s filter.Stream
		d := f.DecodeHeaders(r, &s, nil)
		md, _ := s.Metadata(Name)
		m, _ := md.(map[string]any)
		return d, m
	}
	if d, md := send("/both", true, true); d.Reply != nil || md["payload"] == nil || md["b"] == nil {
		t.Errorf("requires_all with both tokens: %+v, metadata %v", d.Reply, md)
	}
	if d, _ := send("/both", true, false); d.Reply == nil || d.Reply.Reason != "jwt_missing" {
		t.Errorf("requires_all with one token: %+v, want jwt_missing", d.Reply)
	}
	if d, md := send("/loose", false, false); d.Reply != nil || md != nil {
		t.Errorf("allow_missing_or_failed without a token: %+v, %v", d.Reply, md)
	}
	r := request("/loose", "garbage")
	if d := f.DecodeHeaders(r, &filter.Stream{}, nil); d.Reply != nil {
		t.Errorf("allow_missing_or_failed with a bad token: %+v", d.Reply)
	}
	if d, md := send("/loose", true, false); d.Reply != nil || md["payload"] == nil {
		t.Errorf("allow_missing_or_failed with a good token: %+v, %v", d.Reply, md)
	}
	r = request("/open", "garbage")
	if d := f.DecodeHeaders(r, &filter.Stream{}, nil); d.Reply != nil || r.Header.Get("Authorization") == "" {
		t.Errorf("a rule without a requirement: %+v; the token must be left alone", d.Reply)
	}
}
