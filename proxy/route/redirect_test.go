package route

import (
	"crypto/tls"
	"net/http/httptest"
	"net/url"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

func TestRedirectLocation(t *testing.T) {
	for _, c := range []struct {
		rd     Redirect
		target string
		tls    bool
		want   string
	}{
		{Redirect{HTTPS: true}, "http://shop.example.test:8080/cart?x=1", false, "https://shop.example.test/cart?x=1"},
		{Redirect{HTTPS: true, Port: 8443}, "http://shop.example.test:8080/a%2Fb", false, "https://shop.example.test:8443/a%2Fb"},
		{Redirect{HTTPS: true, Port: 443}, "http://shop.example.test/", false, "https://shop.example.test/"},
		{Redirect{Port: 9090}, "http://a.test:80/p", false, "http://a.test:9090/p"},
		{Redirect{}, "https://a.test:8443/p", true, "https://a.test:8443/p"},
	} {
		req := httptest.NewRequest("GET", c.target, nil)
		if c.tls {
			req.TLS = &tls.ConnectionState{}
		}
		if got := c.rd.Location(req); got != c.want {
			t.Errorf("%+v.Location(%s) = %q, want %q", c.rd, c.target, got, c.want)
		}
	}
}

func TestCompileRedirect(t *testing.T) {
	rc := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
		Name: "v", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}, PortRedirect: 8443}},
		}},
	}}}
	tbl, err := Compile(rc, func(string) int { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	rt := tbl.Match("x.test", "/")
	if rt == nil || rt.Redirect == nil || rt.Redirect.Status != 301 || rt.Redirect.Port != 8443 {
		t.Fatalf("matched route %+v, want a 301 redirect to port 8443", rt)
	}
	rc.VirtualHosts[0].Routes[0].GetRedirect().HostRedirect = "evil.test"
	if _, err := Compile(rc, func(string) int { return 0 }); err == nil {
		t.Error("a host_redirect compiled: only scheme and port may change")
	}
}

// FuzzRedirectLocation: whatever Host and path a client sends, the
// Location of an https redirect is an https URL on the configured port
// whose host is the request's.
func FuzzRedirectLocation(f *testing.F) {
	f.Add("shop.example.test:8080", "/cart?x=1")
	f.Add("[::1]:80", "/")
	f.Add("a.test", "//evil.test/x")
	f.Fuzz(func(t *testing.T, host, target string) {
		req := httptest.NewRequest("GET", "http://placeholder/", nil)
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		req.URL, req.Host = u, host
		loc := (&Redirect{HTTPS: true, Port: 8443, Status: 301}).Location(req)
		if loc == "" {
			return // a Host that names no host: refused, never echoed
		}
		got, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("Location %q does not parse: %v", loc, err)
		}
		if got.Scheme != "https" || got.Port() != "8443" {
			t.Fatalf("Location %q: want https on port 8443", loc)
		}
	})
}
