package descriptor

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	exprv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rate_limit_descriptors/expr/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/proxy/filter"
)

func genericKey(k, v string) *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
		GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: k, DescriptorValue: v}}}
}

func peer(t *testing.T, key string, skip bool) *routev3.RateLimit_Action {
	t.Helper()
	a, err := anypb.New(&exprv3.Descriptor{DescriptorKey: key, SkipIfError: skip,
		ExprSpecifier: &exprv3.Descriptor_Text{Text: "connection.uri_san_peer_certificate"}})
	if err != nil {
		t.Fatal(err)
	}
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Extension{
		Extension: &corev3.TypedExtensionConfig{Name: "envoy.rate_limit_descriptors.expr", TypedConfig: a}}}
}

func TestAppend(t *testing.T) {
	rls, err := Compile([]*routev3.RateLimit{
		{Actions: []*routev3.RateLimit_Action{genericKey("destination", "catalog.shop"), genericKey("", "x")}},
		{Actions: []*routev3.RateLimit_Action{genericKey("limit", "search"), peer(t, "source", false)}},
		{Actions: []*routev3.RateLimit_Action{genericKey("limit", "search"), peer(t, "source", true)}},
		{Actions: []*routev3.RateLimit_Action{peer(t, "source", true)}},
	}, "rate_limits")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("spiffe://weft.local/ns/shop/sa/web")
	withPeer := &filter.Stream{TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{u}}}}}
	for _, tc := range []struct {
		rl   int
		s    *filter.Stream
		want string
	}{
		{0, &filter.Stream{}, "[{destination catalog.shop} {generic_key x}] true"},
		{1, withPeer, "[{limit search} {source spiffe://weft.local/ns/shop/sa/web}] true"},
		// Without a caller's identity the rate limit produces no
		// descriptor, unless it may skip the entry and has others.
		{1, &filter.Stream{}, "[] false"},
		{2, &filter.Stream{}, "[{limit search}] true"},
		{2, withPeer, "[{limit search} {source spiffe://weft.local/ns/shop/sa/web}] true"},
		{3, &filter.Stream{}, "[] false"},
	} {
		d, ok := rls[tc.rl].Append(nil, tc.s)
		if got := fmt.Sprintf("%v %v", d, ok); got != tc.want {
			t.Errorf("rate limit %d: %v %v, want %s", tc.rl, d, ok, tc.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	other, _ := anypb.New(&exprv3.Descriptor{DescriptorKey: "k", ExprSpecifier: &exprv3.Descriptor_Text{Text: "request.path"}})
	for _, tc := range []struct {
		rl   *routev3.RateLimit
		want string
	}{
		{&routev3.RateLimit{}, "rate_limits[0].actions: at least one action is required"},
		{&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{genericKey("k", "")}}, "rate_limits[0].actions[0].generic_key.descriptor_value: is required"},
		{&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_SourceCluster_{}}}},
			"rate_limits[0].actions[0]: only generic_key and the envoy.rate_limit_descriptors.expr extension are supported"},
		{&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_Extension{
			Extension: &corev3.TypedExtensionConfig{Name: "envoy.rate_limit_descriptors.expr", TypedConfig: other}}}}},
			`rate_limits[0].actions[0].extension.typed_config.text: only the expression "connection.uri_san_peer_certificate" is supported`},
	} {
		if _, err := Compile([]*routev3.RateLimit{tc.rl}, "rate_limits"); err == nil || err.Error() != tc.want {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}
