package runtime

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestJWTFilterFields: the JWT filter's honoured fields compile; any other
// is NACKed with its path, and so is metadata the filter cannot use.
func TestJWTFilterFields(t *testing.T) {
	provider := func(edit func(*jwtv3.JwtProvider)) *jwtv3.JwtAuthentication {
		p := &jwtv3.JwtProvider{
			Issuer:            "https://idp.test",
			PayloadInMetadata: "payload",
			JwksSourceSpecifier: &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{HttpUri: &corev3.HttpUri{
				Uri: "https://127.0.0.1:1/jwks", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "jwks|127.0.0.1|1"},
				Timeout: durationpb.New(time.Second),
			}}},
		}
		if edit != nil {
			edit(p)
		}
		return &jwtv3.JwtAuthentication{
			Providers: map[string]*jwtv3.JwtProvider{"issuer-0": p},
			Rules: []*jwtv3.RequirementRule{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
					RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "issuer-0"},
				}},
			}},
		}
	}
	roots := func(t *testing.T, key string) *corev3.Metadata {
		s, err := structpb.NewStruct(map[string]any{key: map[string]any{"issuer-0": "junk"}})
		if err != nil {
			t.Fatal(err)
		}
		return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.jwt_authn": s}}
	}
	tests := []struct {
		name string
		cfg  *jwtv3.JwtAuthentication
		meta func(t *testing.T) *corev3.Metadata
		want string
	}{
		{name: "honoured fields", cfg: provider(nil)},
		{
			name: "claim_to_headers",
			cfg: provider(func(p *jwtv3.JwtProvider) {
				p.ClaimToHeaders = []*jwtv3.JwtClaimToHeader{{HeaderName: "x-sub", ClaimName: "sub"}}
			}),
			want: `http_filters[0].typed_config(envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication).providers["issuer-0"].claim_to_headers: field is not supported`,
		},
		{
			name: "async_fetch",
			cfg: provider(func(p *jwtv3.JwtProvider) {
				p.GetRemoteJwks().AsyncFetch = &jwtv3.JwksAsyncFetch{}
			}),
			want: "remote_jwks.async_fetch: field is not supported",
		},
		{
			name: "roots that are not PEM",
			cfg:  provider(nil),
			meta: func(t *testing.T) *corev3.Metadata { return roots(t, "jwks_ca") },
			want: `jwks_ca["issuer-0"]: holds no PEM certificate`,
		},
		{
			name: "unknown metadata",
			cfg:  provider(nil),
			meta: func(t *testing.T) *corev3.Metadata { return roots(t, "jwks_cert") },
			want: "jwt_authn.jwks_cert: is not supported",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fullConfig(t)
			inboundConnectionManager(t, r, func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = []*hcmv3.HttpFilter{
					{Name: "envoy.filters.http.jwt_authn", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, tt.cfg)}},
					{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}},
				}
			})
			if tt.meta != nil {
				r.Listeners["inbound"].FilterChains[0].Metadata = tt.meta(t)
			}
			rt := New(Options{})
			_, err := rt.build(r, rt.cur.Load())
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
