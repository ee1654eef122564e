package route

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/xdswire"
)

func prefix(p, cluster string) *routev3.Route {
	return withMatch(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}, cluster)
}

func withMatch(m *routev3.RouteMatch, cluster string) *routev3.Route {
	return &routev3.Route{
		Match:  m,
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
	}
}

func vhost(name string, domains []string, routes ...*routev3.Route) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: domains, Routes: routes}
}

func identity(name string) string { return name }

func compile(t testing.TB, rc *routev3.RouteConfiguration) *Table[string] {
	t.Helper()
	tab, err := Compile(rc, identity)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestVirtualHostSelection(t *testing.T) {
	tab := compile(t, &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{
		vhost("exact", []string{"web.default", "web.default:80", "web", "web:80"}, prefix("/", "exact")),
		vhost("suffix", []string{"*.default"}, prefix("/", "suffix")),
		vhost("longer-suffix", []string{"*.api.default"}, prefix("/", "longer-suffix")),
		vhost("prefix", []string{"api.*"}, prefix("/", "prefix")),
		vhost("any", []string{"*"}, prefix("/", "any")),
	}})
	tests := map[string]string{
		"web.default":     "exact",
		"web.default:80":  "exact",
		"WEB.Default":     "exact",
		"web:80":          "exact",
		"web:8080":        "any", // ports are part of the domain
		"other.default":   "suffix",
		"v1.api.default":  "longer-suffix",
		"api.example.com": "prefix",
		".default":        "any", // a wildcard matches at least one character
		"somewhere":       "any",
	}
	for host, want := range tests {
		r := tab.Match(host, "/")
		if r == nil || r.Target != want {
			t.Errorf("Match(%q) = %v, want %s", host, r, want)
		}
	}
}

func TestIgnorePort(t *testing.T) {
	tab := compile(t, &routev3.RouteConfiguration{
		IgnorePortInHostMatching: true,
		VirtualHosts:             []*routev3.VirtualHost{vhost("web", []string{"web", "[::1]"}, prefix("/", "web"))},
	})
	for _, host := range []string{"web", "web:8080", "[::1]:80", "[::1]"} {
		if r := tab.Match(host, "/"); r == nil {
			t.Errorf("Match(%q) = nil", host)
		}
	}
	if r := tab.Match("other:80", "/"); r != nil {
		t.Errorf("Match(other:80) = %v", r.Target)
	}
}

func TestRouteMatch(t *testing.T) {
	insensitive := &routev3.RouteMatch{
		PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/CaSe"}, CaseSensitive: wrapperspb.Bool(false),
	}
	tab := compile(t, &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{vhost("all", []string{"*"},
		withMatch(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exact"}}, "path"),
		withMatch(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `/users/[0-9]+`}}}, "regex"),
		withMatch(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, "separated"),
		withMatch(insensitive, "insensitive"),
		prefix("/static/", "static"),
		prefix("/", "fallback"),
	)}})
	tests := map[string]string{
		"/exact":          "path",
		"/exact?q=1":      "path",
		"/exact/more":     "fallback",
		"/users/42":       "regex",
		"/users/42?x":     "regex",
		"/users/42/x":     "fallback", // a regex matches the whole path
		"/users/abc":      "fallback",
		"/api":            "separated",
		"/api/v1":         "separated",
		"/api?x=1":        "separated",
		"/apis":           "fallback",
		"/case/x":         "insensitive",
		"/CASE":           "insensitive",
		"/static/app.js":  "static",
		"/static":         "fallback",
		"/":               "fallback",
		"/?static/=1":     "fallback",
		"/EXACT":          "fallback", // case-sensitive by default
		"/static/?q=/api": "static",
	}
	for path, want := range tests {
		r := tab.Match("any", path)
		if r == nil || r.Target != want {
			got := "<nil>"
			if r != nil {
				got = r.Target
			}
			t.Errorf("Match(%q) = %s, want %s", path, got, want)
		}
	}
}

func TestFirstMatchWins(t *testing.T) {
	tab := compile(t, &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
		vhost("all", []string{"*"}, prefix("/", "first"), prefix("/specific", "second")),
	}})
	if r := tab.Match("h", "/specific"); r.Target != "first" {
		t.Fatalf("got %s", r.Target)
	}
}

func TestNoMatch(t *testing.T) {
	tab := compile(t, &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
		vhost("web", []string{"web"}, prefix("/api", "web")),
	}})
	if r := tab.Match("other", "/api"); r != nil {
		t.Error("no virtual host: matched")
	}
	if r := tab.Match("web", "/"); r != nil {
		t.Error("no route: matched")
	}
}

func TestRouteAction(t *testing.T) {
	r := prefix("/", "c")
	a := r.GetRoute()
	a.Timeout = durationpb.New(3 * time.Second)
	a.ClusterNotFoundResponseCode = routev3.RouteAction_NOT_FOUND
	a.UpgradeConfigs = []*routev3.RouteAction_UpgradeConfig{{UpgradeType: "WebSocket", Enabled: wrapperspb.Bool(false)}}
	tab := compile(t, &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{vhost("v", []string{"*"}, r)}})
	got := tab.Match("h", "/")
	if got.Timeout != 3*time.Second || got.ClusterNotFoundCode != 404 || got.Upgrades["websocket"] {
		t.Fatalf("compiled action: %+v", got)
	}
}

func TestCompileErrors(t *testing.T) {
	bad := func(edit func(*routev3.RouteConfiguration)) *routev3.RouteConfiguration {
		rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{vhost("v", []string{"a"}, prefix("/", "c"))}}
		edit(rc)
		return rc
	}
	tests := map[string]struct {
		rc   *routev3.RouteConfiguration
		want string
	}{
		"bad regex": {bad(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].Match.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "(["}}
		}), "virtual_hosts[0].routes[0].match.safe_regex.regex: "},
		"no path specifier": {bad(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].Match.PathSpecifier = nil
		}), "virtual_hosts[0].routes[0].match: a path specifier"},
		"redirect to another host": {bad(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].Action = &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{HostRedirect: "elsewhere.test"}}
		}), "virtual_hosts[0].routes[0].redirect.host_redirect: is not supported"},
		"no domains": {bad(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Domains = nil
		}), "virtual_hosts[0].domains: at least one domain"},
		"wildcard in the middle": {bad(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Domains = []string{"a.*.b"}
		}), "virtual_hosts[0].domains[0]: domain \"a.*.b\": a wildcard must come first or last"},
		"duplicate domains": {bad(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts = append(rc.VirtualHosts, vhost("w", []string{"b", "A"}, prefix("/", "c")))
		}), "virtual_hosts[1].domains[1]: domain \"a\" is also served by virtual_hosts[0]"},
		"bad separated prefix": {bad(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].Match.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api/"}
		}), "path_separated_prefix"},
		"upgrade type": {bad(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].GetRoute().UpgradeConfigs = []*routev3.RouteAction_UpgradeConfig{{UpgradeType: "h2c"}}
		}), "route.upgrade_configs[0].upgrade_type"},
	}
	for name, tt := range tests {
		_, err := Compile(tt.rc, identity)
		var fe *xdswire.FieldError
		if err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want a FieldError containing %q", name, err, tt.want)
		}
	}
}

// benchTable is an http_proxy-like table: one virtual host per service with
// four domains each, several routes in the one that matches.
func benchTable(b *testing.B, services int) *Table[string] {
	rc := &routev3.RouteConfiguration{Name: "http_proxy"}
	for i := 0; i < services; i++ {
		svc := fmt.Sprintf("svc%d", i)
		rc.VirtualHosts = append(rc.VirtualHosts, vhost(svc,
			[]string{svc + ".default", svc + ".default:80", svc, svc + ":80"},
			withMatch(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/healthz"}}, "health"),
			withMatch(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `/users/[0-9]+`}}}, "users"),
			prefix("/api/", "api"),
			prefix("/", "outbound|"+svc+".default"),
		))
	}
	return compile(b, rc)
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000} {
		tab := benchTable(b, n)
		host := fmt.Sprintf("svc%d.default:80", n/2)
		b.Run(fmt.Sprintf("prefix/services=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := tab.Match(host, "/index.html?lang=en"); r == nil {
					b.Fatal("no match")
				}
			}
		})
		b.Run(fmt.Sprintf("regex/services=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := tab.Match(host, "/users/12345"); r == nil || r.Target != "users" {
					b.Fatal("no match")
				}
			}
		})
	}
	tab := benchTable(b, 10)
	b.Run("uppercase host", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tab.Match("SVC5.default", "/")
		}
	})
}

func FuzzMatch(f *testing.F) {
	rc := &routev3.RouteConfiguration{IgnorePortInHostMatching: true, VirtualHosts: []*routev3.VirtualHost{
		vhost("a", []string{"web", "*.default", "api.*"}, prefix("/", "a")),
		vhost("b", []string{"*"},
			withMatch(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `/u/[0-9]+`}}}, "b"),
			withMatch(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, "b")),
	}}
	tab := compile(f, rc)
	f.Add("web:80", "/x?y")
	f.Add("[::1]:8080", "/u/1")
	f.Add("API.x", "/api?")
	f.Fuzz(func(t *testing.T, host, path string) {
		tab.Match(host, path)
	})
}
