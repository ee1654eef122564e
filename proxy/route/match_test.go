package route

import (
	"net/http"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/proxy/xdswire"
)

func exact(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func headerString(name string, sm *matcherv3.StringMatcher, invert bool) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, InvertMatch: invert,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}
}

func headerPresent(name string, present, invert bool) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, InvertMatch: invert,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: present}}
}

func TestHeaderAndQueryMatch(t *testing.T) {
	regex := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
		SafeRegex: &matcherv3.RegexMatcher{Regex: `v[0-9]+`}}}
	prefixCI := &matcherv3.StringMatcher{IgnoreCase: true, MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "Mobile"}}
	tests := []struct {
		name    string
		headers []*routev3.HeaderMatcher
		query   []*routev3.QueryParameterMatcher
		req     Request
		want    bool
	}{
		{"exact", []*routev3.HeaderMatcher{headerString("x-version", exact("v2"), false)}, nil,
			Request{Header: http.Header{"X-Version": {"v2"}}}, true},
		{"exact mismatch", []*routev3.HeaderMatcher{headerString("x-version", exact("v2"), false)}, nil,
			Request{Header: http.Header{"X-Version": {"v1"}}}, false},
		{"exact absent", []*routev3.HeaderMatcher{headerString("x-version", exact("v2"), false)}, nil,
			Request{}, false},
		{"inverted mismatch", []*routev3.HeaderMatcher{headerString("x-version", exact("v2"), true)}, nil,
			Request{Header: http.Header{"X-Version": {"v1"}}}, true},
		{"inverted absent never matches", []*routev3.HeaderMatcher{headerString("x-version", exact("v2"), true)}, nil,
			Request{}, false},
		{"multiple values joined", []*routev3.HeaderMatcher{headerString("x-a", exact("1,2"), false)}, nil,
			Request{Header: http.Header{"X-A": {"1", "2"}}}, true},
		{"prefix ignore case", []*routev3.HeaderMatcher{headerString("user-agent", prefixCI, false)}, nil,
			Request{Header: http.Header{"User-Agent": {"mobile-safari"}}}, true},
		{"regex full match", []*routev3.HeaderMatcher{headerString("x-v", regex, false)}, nil,
			Request{Header: http.Header{"X-V": {"v12"}}}, true},
		{"regex partial", []*routev3.HeaderMatcher{headerString("x-v", regex, false)}, nil,
			Request{Header: http.Header{"X-V": {"xv12"}}}, false},
		{"present", []*routev3.HeaderMatcher{headerPresent("x-debug", true, false)}, nil,
			Request{Header: http.Header{"X-Debug": {""}}}, true},
		{"present absent", []*routev3.HeaderMatcher{headerPresent("x-debug", true, false)}, nil,
			Request{}, false},
		{"present false absent", []*routev3.HeaderMatcher{headerPresent("x-debug", false, false)}, nil,
			Request{}, true},
		{"present inverted absent", []*routev3.HeaderMatcher{headerPresent("x-debug", true, true)}, nil,
			Request{}, true},
		{"method", []*routev3.HeaderMatcher{headerString(":method", exact("POST"), false)}, nil,
			Request{Method: "POST"}, true},
		{"method mismatch", []*routev3.HeaderMatcher{headerString(":method", exact("POST"), false)}, nil,
			Request{Method: "GET"}, false},
		{"scheme", []*routev3.HeaderMatcher{headerString(":scheme", exact("https"), false)}, nil,
			Request{Scheme: "https"}, true},
		{"all must match", []*routev3.HeaderMatcher{
			headerString(":method", exact("GET"), false), headerPresent("x-a", true, false)}, nil,
			Request{Method: "GET"}, false},
		{"query exact", nil, []*routev3.QueryParameterMatcher{{Name: "debug",
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: exact("a b")}}},
			Request{Path: "/x?z=1&debug=a+b"}, true},
		{"query first value", nil, []*routev3.QueryParameterMatcher{{Name: "debug",
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: exact("2")}}},
			Request{Path: "/x?debug=1&debug=2"}, false},
		{"query regex", nil, []*routev3.QueryParameterMatcher{{Name: "v",
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: regex}}},
			Request{Path: "/x?v=v3"}, true},
		{"query present", nil, []*routev3.QueryParameterMatcher{{Name: "debug",
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}},
			Request{Path: "/x?debug"}, true},
		{"query absent", nil, []*routev3.QueryParameterMatcher{{Name: "debug",
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}},
			Request{Path: "/x?debugger=1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers: tt.headers, QueryParameters: tt.query}
			tab := compile(t, &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
				vhost("vh", []string{"*"}, withMatch(m, "matched"), prefix("/", "fallback")),
			}})
			req := tt.req
			if req.Path == "" {
				req.Path = "/"
			}
			req.Host = "svc"
			got := tab.MatchRequest(&req).Cluster == "matched"
			if got != tt.want {
				t.Errorf("matched = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHeaderMatchCompileErrors(t *testing.T) {
	tests := map[string]*routev3.RouteMatch{
		"virtual_hosts[0].routes[0].match.headers[0].name": {Headers: []*routev3.HeaderMatcher{{
			HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}},
		"virtual_hosts[0].routes[0].match.headers[0]": {Headers: []*routev3.HeaderMatcher{{Name: "x"}}},
		"virtual_hosts[0].routes[0].match.headers[0].string_match.safe_regex.regex": {Headers: []*routev3.HeaderMatcher{
			headerString("x", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
				SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}, false)}},
		"virtual_hosts[0].routes[0].match.query_parameters[0]":    {QueryParameters: []*routev3.QueryParameterMatcher{{Name: "a"}}},
		"virtual_hosts[0].routes[0].match.headers[0].name#pseudo": {Headers: []*routev3.HeaderMatcher{headerPresent(":protocol", true, false)}},
	}
	for want, m := range tests {
		m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
		_, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
			vhost("vh", []string{"*"}, withMatch(m, "c"))}}, identity)
		fe, ok := err.(*xdswire.FieldError)
		if !ok {
			t.Errorf("%s: err = %v, want a FieldError", want, err)
			continue
		}
		if wantPath, _, _ := cut(want); fe.Path != wantPath {
			t.Errorf("path = %q, want %q (%v)", fe.Path, wantPath, err)
		}
	}
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func BenchmarkMatchHeaders(b *testing.B) {
	m := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api"},
		Headers: []*routev3.HeaderMatcher{
			headerString(":method", exact("GET"), false),
			headerString("x-version", exact("v2"), false),
		},
		QueryParameters: []*routev3.QueryParameterMatcher{{Name: "debug",
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}},
	}
	tab := compile(b, &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
		vhost("vh", []string{"svc"}, withMatch(m, "v2"), prefix("/", "fallback")),
	}})
	h := http.Header{"X-Version": {"v2"}, "Accept": {"*/*"}}
	b.ReportAllocs()
	for b.Loop() {
		req := Request{Host: "svc", Path: "/api/items?page=2&debug=1", Method: "GET", Header: h}
		if tab.MatchRequest(&req).Cluster != "v2" {
			b.Fatal("no match")
		}
	}
}

// FuzzCompileRequestMatch compiles header and query matchers from arbitrary
// bytes and matches arbitrary requests against them: neither may panic.
func FuzzCompileRequestMatch(f *testing.F) {
	seed := &routev3.RouteMatch{
		PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
		Headers:       []*routev3.HeaderMatcher{headerString("x-v", exact("1"), true), headerPresent(":method", true, false)},
		QueryParameters: []*routev3.QueryParameterMatcher{{Name: "q",
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: exact("1")}}},
	}
	b, _ := proto.Marshal(seed)
	f.Add(b, "/a?q=1", "GET", "1")
	f.Fuzz(func(t *testing.T, raw []byte, path, method, hv string) {
		m := &routev3.RouteMatch{}
		if proto.Unmarshal(raw, m) != nil {
			return
		}
		tab, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
			vhost("vh", []string{"*"}, withMatch(m, "c"))}}, identity)
		if err != nil {
			return
		}
		tab.MatchRequest(&Request{Host: "h", Path: path, Method: method, Header: http.Header{"X-V": {hv}}})
	})
}
