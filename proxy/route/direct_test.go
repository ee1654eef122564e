package route

import (
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

func directRoute(status uint32, body string) *routev3.Route {
	return &routev3.Route{
		Name:  "egress_denied",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: status,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}},
		}},
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-weft-error", Value: "egress_denied"}}},
	}
}

func TestDirectResponse(t *testing.T) {
	tab := compile(t, &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
		vhost("api", []string{"api.example.com"}, prefix("/", "outbound|api.example.com:80")),
		vhost("deny", []string{"*"}, directRoute(502, "refused\n")),
	}})
	if r := tab.Match("api.example.com", "/x"); r == nil || r.Direct != nil || r.Cluster != "outbound|api.example.com:80" {
		t.Fatalf("registered host: %+v", r)
	}
	r := tab.Match("other.example", "/x")
	if r == nil || r.Direct == nil {
		t.Fatalf("unregistered host: %+v, want a direct response", r)
	}
	if r.Direct.Status != 502 || r.Direct.Body != "refused\n" || r.Cluster != "" {
		t.Errorf("direct response = %+v, cluster %q", *r.Direct, r.Cluster)
	}
	h := http.Header{}
	for _, e := range r.ResponseEdits {
		e.Apply(h)
	}
	if h.Get("X-Weft-Error") != "egress_denied" {
		t.Errorf("response headers = %v, want x-weft-error: egress_denied", h)
	}
}

func TestDirectResponseErrors(t *testing.T) {
	withRequestEdit := directRoute(502, "")
	withRequestEdit.RequestHeadersToRemove = []string{"x-a"}
	fileBody := directRoute(502, "")
	fileBody.GetDirectResponse().Body = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/passwd"}}
	for _, tt := range []struct {
		name string
		r    *routev3.Route
		want string
	}{
		{"status", directRoute(99, ""), "routes[0].direct_response.status: 99 is not an HTTP status from 200 to 599"},
		{"body size", directRoute(502, strings.Repeat("x", maxDirectBody+1)), "routes[0].direct_response.body: is 4097 bytes"},
		{"file body", fileBody, "routes[0].direct_response.body: only inline_string and inline_bytes are supported"},
		{"request edit", withRequestEdit, "routes[0].request_headers_to_add: a direct response forwards no request to edit"},
		{"no action", &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}},
			"a route action or direct_response is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{vhost("v", []string{"*"}, tt.r)}}, identity)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Compile error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
