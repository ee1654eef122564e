package hcm

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/route"
)

// TestDirectResponse: a direct_response route answers with its status,
// body and response header edits, forwards nothing, and a refusal (>= 400)
// is logged with the host asked for.
func TestDirectResponse(t *testing.T) {
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
		Name: "egress_denied", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Name:  "egress_denied",
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: 502,
				Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "egress_denied: not registered\n"}},
			}},
			ResponseHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-weft-error", Value: "egress_denied"}}},
		}},
	}}}
	tab, err := route.Compile(rc, func(name string) *Upstream {
		t.Fatalf("a direct response resolved cluster %q", name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	obs := &recorder{}
	m := New(Config{Routes: tab, Direction: observe.Outbound, Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Observers: []observe.Observer{obs}})

	w := serve(m, httptest.NewRequest(http.MethodGet, "http://unlisted.example/x", nil))
	if w.Code != 502 || w.Body.String() != "egress_denied: not registered\n" ||
		w.Header().Get("X-Weft-Error") != "egress_denied" || w.Header().Get("Content-Type") != "text/plain" {
		t.Fatalf("direct response: %d %q %v", w.Code, w.Body, w.Header())
	}
	if len(obs.done) != 1 {
		t.Fatalf("%d records, want 1", len(obs.done))
	}
	if rec := obs.done[0]; rec.Reason != "egress_denied" || rec.Route != "egress_denied" || rec.Status != 502 {
		t.Errorf("record: reason %q route %q status %d, want egress_denied, egress_denied, 502", rec.Reason, rec.Route, rec.Status)
	}
	if l := logs.String(); !strings.Contains(l, "request refused") || !strings.Contains(l, "host=unlisted.example") ||
		!strings.Contains(l, "reason=egress_denied") {
		t.Errorf("log: %q, want the refusal with the host and reason", l)
	}

	w = serve(m, httptest.NewRequest(http.MethodHead, "http://unlisted.example/x", nil))
	if w.Code != 502 || w.Body.Len() != 0 {
		t.Errorf("HEAD: %d with %d body bytes, want 502 and none", w.Code, w.Body.Len())
	}
}
