package rbac

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/proxy/filter"
)

// Builders for the RBAC shapes the translator emits.

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func prefix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}

func anyPerm() *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Any{Any: true}}
}

func anyID() *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Any{Any: true}}
}

func pathPerm(m *matcherv3.StringMatcher) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: m}}}}
}

func methodPerm(m string) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Header{Header: &routev3.HeaderMatcher{
		Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact(m)},
	}}}
}

func orPerm(ps ...*rbacconfigv3.Permission) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_OrRules{OrRules: &rbacconfigv3.Permission_Set{Rules: ps}}}
}

func andPerm(ps ...*rbacconfigv3.Permission) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_AndRules{AndRules: &rbacconfigv3.Permission_Set{Rules: ps}}}
}

func peerID(m *matcherv3.StringMatcher) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Authenticated_{Authenticated: &rbacconfigv3.Principal_Authenticated{PrincipalName: m}}}
}

func notID(p *rbacconfigv3.Principal) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_NotId{NotId: p}}
}

func anyAuthenticated() *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Authenticated_{Authenticated: &rbacconfigv3.Principal_Authenticated{}}}
}

func orIDs(ids ...*rbacconfigv3.Principal) *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_OrIds{OrIds: &rbacconfigv3.Principal_Set{Ids: ids}}}
}

func claim(name string, v *matcherv3.ValueMatcher) *rbacconfigv3.Principal {
	//lint:ignore SA1019 the translator emits metadata, per the JWT filter's contract.
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
		Filter: "envoy.filters.http.jwt_authn",
		Path: []*matcherv3.MetadataMatcher_PathSegment{
			{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "payload"}},
			{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: name}},
		},
		Value: v,
	}}}
}

func claimIs(name, v string) *rbacconfigv3.Principal {
	sm := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: exact(v)}}
	return orIDs(claim(name, sm), claim(name, &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{
		ListMatch: &matcherv3.ListMatcher{MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: sm}},
	}}))
}

func rule(perms []*rbacconfigv3.Permission, ids ...*rbacconfigv3.Principal) *rbacconfigv3.Policy {
	return &rbacconfigv3.Policy{Permissions: perms, Principals: ids}
}

// stream is a filter.Stream of a peer with the given SPIFFE ID ("" for
// plaintext) and JWT claims (nil for none).
func stream(id string, claims map[string]any) *filter.Stream {
	s := &filter.Stream{}
	if id != "" {
		u, err := url.Parse(id)
		if err != nil {
			panic(err)
		}
		s.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{u}}}}
	}
	if claims != nil {
		s.SetMetadata("envoy.filters.http.jwt_authn", map[string]any{"payload": claims})
	}
	return s
}

const (
	web     = "spiffe://weft.local/ns/shop/sa/web"
	batch   = "spiffe://weft.local/ns/batch/sa/report"
	unknown = "spiffe://weft.local/ns/evil/sa/web"
)

// TestFilter runs a DENY and an ALLOW filter in order, as the translator
// configures them, over sources and requests.
func TestFilter(t *testing.T) {
	deny, err := New(&rbachttpv3.RBAC{Rules: &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_DENY, Policies: map[string]*rbacconfigv3.Policy{
		"shop/deny-admin": rule([]*rbacconfigv3.Permission{orPerm(pathPerm(exact("/admin")), pathPerm(prefix("/admin/")))},
			notID(anyAuthenticated()), peerID(prefix("spiffe://weft.local/ns/batch/sa/"))),
		"shop/deny-banned": rule([]*rbacconfigv3.Permission{anyPerm()}, claimIs("sub", "banned")),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	allow, err := New(&rbachttpv3.RBAC{Rules: &rbacconfigv3.RBAC{Policies: map[string]*rbacconfigv3.Policy{
		"shop/readers/web": rule([]*rbacconfigv3.Permission{andPerm(orPerm(methodPerm("GET"), methodPerm("HEAD")), pathPerm(prefix("/")))},
			peerID(exact(web)), notID(anyAuthenticated())),
		"shop/readers/admins": rule([]*rbacconfigv3.Permission{anyPerm()}, claimIs("groups", "admins")),
		"shop/readers/header": rule([]*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Header{Header: &routev3.HeaderMatcher{
			Name: "x-token", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: prefix("ok-")},
		}}}}, peerID(prefix("spiffe://weft.local/ns/batch/"))),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		peer         string
		claims       map[string]any
		method, path string
		header       http.Header
		deniedBy     string // "" when allowed
	}{
		{name: "web reads", peer: web, method: "GET", path: "/items"},
		{name: "web writes", peer: web, method: "POST", path: "/items", deniedBy: DefaultDeny},
		{name: "plaintext reads", method: "HEAD", path: "/items"},
		{name: "plaintext admin", method: "GET", path: "/admin/users", deniedBy: "shop/deny-admin"},
		{name: "plaintext admin via dot segments", method: "GET", path: "/items/../admin", deniedBy: "shop/deny-admin"},
		{name: "plaintext admin via double slash", method: "GET", path: "//admin", deniedBy: "shop/deny-admin"},
		{name: "web admin", peer: web, method: "GET", path: "/admin"},
		{name: "administrator is not admin", method: "GET", path: "/administrator"},
		{name: "batch admin", peer: batch, method: "GET", path: "/admin", header: http.Header{"X-Token": {"ok-1"}}, deniedBy: "shop/deny-admin"},
		{name: "batch with token", peer: batch, method: "DELETE", path: "/x", header: http.Header{"X-Token": {"ok-1"}}},
		{name: "batch without token", peer: batch, method: "DELETE", path: "/x", deniedBy: DefaultDeny},
		{name: "unknown identity", peer: unknown, method: "GET", path: "/items", deniedBy: DefaultDeny},
		{name: "admins group claim", peer: unknown, claims: map[string]any{"groups": []any{"dev", "admins"}}, method: "PUT", path: "/x"},
		{name: "admins string claim", peer: unknown, claims: map[string]any{"groups": "admins"}, method: "PUT", path: "/x"},
		{name: "other groups", peer: unknown, claims: map[string]any{"groups": []any{"dev", 3.0}}, method: "PUT", path: "/x", deniedBy: DefaultDeny},
		{name: "banned", peer: web, claims: map[string]any{"sub": "banned"}, method: "GET", path: "/", deniedBy: "shop/deny-banned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://catalog"+tt.path, nil)
			r.URL.Path = tt.path
			for k, v := range tt.header {
				r.Header[k] = v
			}
			s := stream(tt.peer, tt.claims)
			got := ""
			for _, f := range []*Filter{deny, allow} {
				if d := f.DecodeHeaders(r, s, nil); d.Reply != nil {
					if d.Reply.Status != http.StatusForbidden {
						t.Fatalf("status %d, want 403", d.Reply.Status)
					}
					got = d.Reply.Header.Get("weft-denied-by")
					if !strings.Contains(d.Reply.Reason, got) {
						t.Errorf("reason %q does not name %q", d.Reply.Reason, got)
					}
					break
				}
			}
			if got != tt.deniedBy {
				t.Errorf("denied by %q, want %q", got, tt.deniedBy)
			}
		})
	}
}

// TestCompileErrors: what the proxy cannot honour is refused with the
// field's path.
func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		rbac *rbacconfigv3.RBAC
		tcp  bool
		want string
	}{
		{"log action", &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_LOG}, false, "action: LOG is not supported"},
		{"empty policy", &rbacconfigv3.RBAC{Policies: map[string]*rbacconfigv3.Policy{"p": {}}}, false,
			`policies["p"]: permissions and principals are required`},
		{"path on tcp", &rbacconfigv3.RBAC{Policies: map[string]*rbacconfigv3.Policy{"p": rule([]*rbacconfigv3.Permission{pathPerm(exact("/"))}, anyID())}}, true,
			`policies["p"].permissions[0].url_path: matches HTTP requests only`},
		{"claims on tcp", &rbacconfigv3.RBAC{Policies: map[string]*rbacconfigv3.Policy{"p": rule([]*rbacconfigv3.Permission{anyPerm()}, claimIs("a", "b"))}}, true,
			`policies["p"].principals[0].or_ids.ids[0].metadata: matches HTTP requests only`},
		{"bad regex", &rbacconfigv3.RBAC{Policies: map[string]*rbacconfigv3.Policy{"p": rule([]*rbacconfigv3.Permission{pathPerm(
			&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}})}, anyID())}}, false,
			`policies["p"].permissions[0].url_path.path.safe_regex.regex: error parsing regexp`},
		{"pseudo-header", &rbacconfigv3.RBAC{Policies: map[string]*rbacconfigv3.Policy{"p": rule([]*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Header{
			Header: &routev3.HeaderMatcher{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}}, anyID())}}, false,
			`policies["p"].permissions[0].header.name: ":path" is not supported`},
		{"empty or", &rbacconfigv3.RBAC{Policies: map[string]*rbacconfigv3.Policy{"p": rule([]*rbacconfigv3.Permission{orPerm()}, anyID())}}, false,
			`policies["p"].permissions[0].or_rules.rules: at least one rule is required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.rbac, tt.tcp)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Compile error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := New(&rbachttpv3.RBAC{}); err == nil {
		t.Error("New without rules succeeded")
	}
}

// TestConnections: a network engine sees the peer only.
func TestConnections(t *testing.T) {
	e, err := Compile(&rbacconfigv3.RBAC{Policies: map[string]*rbacconfigv3.Policy{
		"data/db-clients": rule([]*rbacconfigv3.Permission{anyPerm()}, peerID(exact(web))),
	}}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		peer string
		auth bool
		ok   bool
	}{{web, true, true}, {unknown, true, false}, {"", false, false}} {
		ok, by, _ := e.Allowed(&Request{Peer: tc.peer, Authenticated: tc.auth})
		if ok != tc.ok || (!ok && by != DefaultDeny) {
			t.Errorf("peer %q: allowed %v by %q, want %v", tc.peer, ok, by, tc.ok)
		}
	}
}

// TestMatchDoesNotAllocate: a request that is allowed, or refused, costs
// no allocation once the stream has read its peer.
func TestMatchDoesNotAllocate(t *testing.T) {
	f, r, s := benchFilter(t)
	f.DecodeHeaders(r, s, nil)
	if n := testing.AllocsPerRun(100, func() { f.DecodeHeaders(r, s, nil) }); n != 0 {
		t.Errorf("DecodeHeaders allocates %v times per request", n)
	}
}

func benchFilter(tb testing.TB) (*Filter, *http.Request, *filter.Stream) {
	policies := map[string]*rbacconfigv3.Policy{}
	for _, ns := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		policies["shop/"+ns] = rule([]*rbacconfigv3.Permission{andPerm(orPerm(methodPerm("GET"), methodPerm("HEAD")),
			orPerm(pathPerm(exact("/"+ns)), pathPerm(prefix("/"+ns+"/"))))},
			peerID(prefix("spiffe://weft.local/ns/"+ns+"/sa/")), claimIs("groups", ns))
	}
	policies["shop/web"] = rule([]*rbacconfigv3.Permission{andPerm(orPerm(methodPerm("GET"), methodPerm("HEAD")), pathPerm(prefix("/items/")))},
		peerID(exact(web)))
	f, err := New(&rbachttpv3.RBAC{Rules: &rbacconfigv3.RBAC{Policies: policies}})
	if err != nil {
		tb.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://catalog/items/42", nil)
	r.Header.Set("X-Request-Id", "1")
	return f, r, stream(web, map[string]any{"groups": []any{"dev"}})
}

// BenchmarkFilter is the RBAC filter deciding one request against nine
// policies, the allowing one last.
func BenchmarkFilter(b *testing.B) {
	f, r, s := benchFilter(b)
	b.ReportAllocs()
	for b.Loop() {
		if d := f.DecodeHeaders(r, s, nil); d.Reply != nil {
			b.Fatal("refused")
		}
	}
}
