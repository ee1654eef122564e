package runtime

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/internal/testpki"
)

// permissive turns the inbound listener into a PERMISSIVE one: an inspector,
// its mTLS chain and a plaintext copy of it.
func permissive(t *testing.T, r *Resources) *listenerv3.Listener {
	l := r.Listeners[xdsmeta.InboundListener]
	tlsChain := l.FilterChains[0]
	tlsChain.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "tls"}
	raw := proto.Clone(tlsChain).(*listenerv3.FilterChain)
	raw.TransportSocket = nil
	raw.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}
	l.FilterChains = append(l.FilterChains, raw)
	l.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name:       "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &tlsinspectorv3.TlsInspector{})},
	}}
	l.ListenerFiltersTimeout = durationpb.New(100 * time.Millisecond)
	l.ContinueOnListenerFiltersTimeout = true
	return l
}

func allowAll() *rbacconfigv3.RBAC {
	return &rbacconfigv3.RBAC{Policies: map[string]*rbacconfigv3.Policy{"p": {
		Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Any{Any: true}}},
		Principals:  []*rbacconfigv3.Principal{{Identifier: &rbacconfigv3.Principal_Any{Any: true}}},
	}}}
}

// TestSecurityConfig: PERMISSIVE chains and RBAC filters are accepted as
// the translator emits them, and what the proxy cannot honour is NACKed
// with its path.
func TestSecurityConfig(t *testing.T) {
	inboundHCM := func(t *testing.T, r *Resources, edit func(*hcmv3.HttpConnectionManager)) {
		editAny(t, r.Listeners[xdsmeta.InboundListener].FilterChains[0].Filters[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{}, edit)
	}
	withRBAC := func(rules *rbacconfigv3.RBAC) func(*hcmv3.HttpConnectionManager) {
		return func(h *hcmv3.HttpConnectionManager) {
			f := &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &rbachttpv3.RBAC{Rules: rules})}}
			h.HttpFilters = append([]*hcmv3.HttpFilter{f}, h.HttpFilters...)
		}
	}
	networkRBAC := func(t *testing.T, r *Resources, rules *rbacconfigv3.RBAC) {
		fc := r.Listeners[xdsmeta.InboundListener].FilterChains[0]
		fc.Filters = append([]*listenerv3.Filter{{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{
			TypedConfig: mustAny(t, &rbacnetworkv3.RBAC{Rules: rules, StatPrefix: "inbound."}),
		}}}, fc.Filters...)
	}
	tests := []struct {
		name string
		edit func(*testing.T, *Resources)
		want string // "" for accepted
	}{
		{"permissive", func(t *testing.T, r *Resources) { permissive(t, r) }, ""},
		{"http rbac", func(t *testing.T, r *Resources) { inboundHCM(t, r, withRBAC(allowAll())) }, ""},
		{"network rbac before the hcm", func(t *testing.T, r *Resources) { networkRBAC(t, r, allowAll()) }, ""},
		{"two chains without an inspector", func(t *testing.T, r *Resources) { permissive(t, r).ListenerFilters = nil },
			`listener "inbound": listener_filters: an envoy.filters.listener.tls_inspector is required`},
		{"two tls chains", func(t *testing.T, r *Resources) {
			l := permissive(t, r)
			l.FilterChains[1].FilterChainMatch.TransportProtocol = "tls"
		}, `filter_chains[1].filter_chain_match.transport_protocol: "tls" does not fit the chain's transport socket`},
		{"source ports", func(t *testing.T, r *Resources) {
			permissive(t, r).FilterChains[0].FilterChainMatch.SourcePorts = []uint32{1}
		}, `filter_chains[0].filter_chain_match.source_ports: field is not supported by this proxy`},
		{"shadow rules", func(t *testing.T, r *Resources) {
			inboundHCM(t, r, func(h *hcmv3.HttpConnectionManager) {
				withRBAC(allowAll())(h)
				editAny(t, h.HttpFilters[0].GetTypedConfig(), &rbachttpv3.RBAC{}, func(c *rbachttpv3.RBAC) { c.ShadowRules = allowAll() })
			})
		}, `http_filters[0].typed_config(envoy.extensions.filters.http.rbac.v3.RBAC).shadow_rules: field is not supported by this proxy`},
		{"source ip", func(t *testing.T, r *Resources) {
			rules := allowAll()
			rules.Policies["p"].Principals[0] = &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_DirectRemoteIp{}}
			inboundHCM(t, r, withRBAC(rules))
		}, `principals[0].direct_remote_ip: field is not supported by this proxy`},
		{"path in a network rbac", func(t *testing.T, r *Resources) {
			rules := allowAll()
			rules.Policies["p"].Permissions[0] = &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
				Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "/"}}},
			}}}
			networkRBAC(t, r, rules)
		}, `rules.policies["p"].permissions[0].url_path: matches HTTP requests only`},
		{"log action", func(t *testing.T, r *Resources) {
			rules := allowAll()
			rules.Action = rbacconfigv3.RBAC_LOG
			inboundHCM(t, r, withRBAC(rules))
		}, `rules.action: LOG is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fullConfig(t)
			tt.edit(t, r)
			rt := New(Options{})
			_, err := rt.build(r, rt.cur.Load())
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted; want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error:\n  %v\nwant it to contain:\n  %s", err, tt.want)
			}
		})
	}
}

// TestPermissiveListener serves one inbound port to a mesh peer over mTLS
// and to a plaintext client; a client that sends nothing (a server-first
// protocol) is served as plaintext once the inspection times out, or
// refused when the listener does not say to continue.
func TestPermissiveListener(t *testing.T) {
	ca := testpki.NewCA(t, "mesh root")
	// A server-first app: it greets, then echoes.
	ln, err := net.Listen("tcp", backendIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.WriteString(c, "hello"); io.Copy(c, c); c.Close() }()
		}
	}()
	for _, cont := range []bool{true, false} {
		t.Run(fmt.Sprintf("continue=%v", cont), func(t *testing.T) {
			rt := New(Options{Identity: newIdentity(t, ca, svcEcho), Metrics: prometheus.NewRegistry()})
			t.Cleanup(func() { rt.Close() })
			r := serverResources(t, svcEcho, serverIP+":0", ln.Addr().String(), ca.PEM())
			l := permissive(t, r)
			l.ListenerFiltersTimeout = durationpb.New(100 * time.Millisecond)
			l.ContinueOnListenerFiltersTimeout = cont
			if err := rt.Apply(r); err != nil {
				t.Fatal(err)
			}
			addr := rt.ListenerAddr(xdsmeta.InboundListener).String()
			greeting := func(c net.Conn) (string, error) {
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 5)
				_, err := io.ReadFull(c, buf)
				return string(buf), err
			}

			peer := svcA.id()
			tc, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, peer, testpki.Options{})},
				InsecureSkipVerify: true, NextProtos: []string{xdsmeta.ALPNTCP}})
			if err != nil {
				t.Fatalf("mTLS: %v", err)
			}
			defer tc.Close()
			if g, err := greeting(tc); err != nil || g != "hello" {
				t.Errorf("mTLS client: %q %v", g, err)
			}

			plain, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			g, err := greeting(plain)
			switch {
			case cont && (err != nil || g != "hello"):
				t.Errorf("silent plaintext client, continue: %q %v", g, err)
			case !cont && err == nil:
				t.Errorf("silent plaintext client without continue was served: %q", g)
			}
			if !cont {
				return
			}

			// STRICT again, on the same socket: the plaintext session
			// ends, the mTLS one goes on.
			if err := rt.Apply(serverResources(t, svcEcho, serverIP+":0", ln.Addr().String(), ca.PEM())); err != nil {
				t.Fatal(err)
			}
			if got := rt.ListenerAddr(xdsmeta.InboundListener).String(); got != addr {
				t.Fatalf("the listener moved from %s to %s", addr, got)
			}
			_ = plain.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(plain, "ping"); err == nil {
				buf := make([]byte, 4)
				if n, err := plain.Read(buf); err == nil {
					t.Errorf("the plaintext session went on under STRICT: read %q", buf[:n])
				}
			}
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 4)
			if _, err := io.WriteString(tc, "ping"); err != nil {
				t.Fatalf("mTLS session under STRICT: %v", err)
			}
			if _, err := io.ReadFull(tc, buf); err != nil || string(buf) != "ping" {
				t.Errorf("mTLS session under STRICT: %q %v", buf, err)
			}
		})
	}
}
