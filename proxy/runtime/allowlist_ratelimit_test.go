package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	exprv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rate_limit_descriptors/expr/v3"

	"github.com/weftmesh/weft/internal/testpki"
)

// TestRateLimitValidation starts from the translator's rate limit golden
// (which TestTranslatorOutputIsAccepted accepts whole) and sets what the
// proxy does not honour: each is refused with its path.
func TestRateLimitValidation(t *testing.T) {
	const (
		hcm   = `listener "inbound": filter_chains[0].filters[0].typed_config(envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager)`
		route = hcm + `.route_config.virtual_hosts[0].routes[0]`
	)
	tests := []struct {
		name string
		edit func(t *testing.T, m *hcmv3.HttpConnectionManager)
		want string
	}{
		{"per-connection buckets", func(t *testing.T, m *hcmv3.HttpConnectionManager) {
			editAny(t, m.HttpFilters[0].GetTypedConfig(), &localratelimitv3.LocalRateLimit{}, func(c *localratelimitv3.LocalRateLimit) { c.LocalRateLimitPerDownstreamConnection = true })
		}, hcm + ".http_filters[0].typed_config(envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit).local_rate_limit_per_downstream_connection: field is not supported"},
		{"the route's own rate_limits", func(t *testing.T, m *hcmv3.HttpConnectionManager) {
			m.GetRouteConfig().VirtualHosts[0].Routes[0].GetRoute().RateLimits = []*routev3.RateLimit{{}}
		}, route + ".route.rate_limits: field is not supported"},
		{"another rate limit service", func(t *testing.T, m *hcmv3.HttpConnectionManager) {
			editAny(t, m.HttpFilters[1].GetTypedConfig(), &ratelimitv3.RateLimit{}, func(c *ratelimitv3.RateLimit) {
				c.RateLimitService.GetGrpcService().GetEnvoyGrpc().ClusterName = "outbound|ratelimit.default"
			})
		}, `rate_limit_service.grpc_service.envoy_grpc.cluster_name: "outbound|ratelimit.default" is not reachable`},
		{"another expression", func(t *testing.T, m *hcmv3.HttpConnectionManager) {
			pf := m.GetRouteConfig().VirtualHosts[0].Routes[0].TypedPerFilterConfig["envoy.filters.http.ratelimit"]
			editAny(t, pf, &ratelimitv3.RateLimitPerRoute{}, func(c *ratelimitv3.RateLimitPerRoute) {
				ext := c.RateLimits[0].Actions[2].GetExtension()
				editAny(t, ext.TypedConfig, &exprv3.Descriptor{}, func(d *exprv3.Descriptor) {
					d.ExprSpecifier = &exprv3.Descriptor_Text{Text: "request.headers['x-user']"}
				})
			})
		}, `rate_limits[0].actions[2].extension.typed_config.text: only the expression "connection.uri_san_peer_certificate" is supported`},
	}
	golden, err := os.ReadFile(filepath.Join(translatorGoldens, "ratelimit.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := parseGolden(t, string(golden))
			for _, sec := range res.Secrets {
				if vc := sec.GetValidationContext(); vc != nil {
					vc.TrustedCa = rootCA(testpki.NewCA(t, "root").PEM()).GetValidationContext().GetTrustedCa()
				}
			}
			l := res.Listeners["inbound"]
			m := &hcmv3.HttpConnectionManager{}
			filter := l.FilterChains[0].Filters[0]
			if err := filter.GetTypedConfig().UnmarshalTo(m); err != nil {
				t.Fatal(err)
			}
			tc.edit(t, m)
			filter.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, m)}
			rt := New(Options{})
			_, err := rt.build(res, rt.cur.Load())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant one containing %s", err, tc.want)
			}
		})
	}
}
