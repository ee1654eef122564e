package v1alpha1_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/weftmesh/weft/api/v1alpha1"
)

// TestDecodeRequestAuthExample decodes the example in testdata, which seeds
// the decode fuzzer too, with its defaults filled in.
func TestDecodeRequestAuthExample(t *testing.T) {
	got := decodeFile(t, "requestauth-catalog.yaml")
	want := []*v1.Object{{
		APIVersion: v1.APIVersion, Kind: "RequestAuth", Metadata: meta("shop", "catalog"),
		Spec: &v1.RequestAuthSpec{
			Issuers: []v1.JWTIssuer{
				{
					Issuer:            "https://auth.shop.example",
					Audiences:         []string{"catalog", "shop-api"},
					JWKSURI:           "https://auth.shop.example/.well-known/jwks.json",
					JWKSCacheDuration: dur(5 * time.Minute),
					JWKSTimeout:       dur(5 * time.Second),
				},
				{
					Issuer:       "partner",
					JWKS:         `{"keys":[{"kty":"EC","crv":"P-256","kid":"2026-11","use":"sig","alg":"ES256","x":"ImM7j4hI3x_4xg4XQ-33925j0v4sng7DFoPTuQXyD1M","y":"FX2A13FfjQJa8VimtynWvVYfS37TZl8nSvRzfo1H9Hs"}]}`,
					FromHeaders:  []v1.JWTHeader{{Name: "x-partner-token"}},
					FromParams:   []string{"token"},
					ForwardToken: true,
				},
			},
			Rules: []v1.RequestAuthRule{
				{Paths: []string{"/admin"}, Require: true, Issuers: []string{"https://auth.shop.example"}},
				{RouteRules: []string{"checkout"}, Require: true},
				{Paths: []string{"/healthz"}},
			},
		},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded objects (-want +got):\n%s", diff)
	}
	for _, o := range got {
		if errs := o.Validate(); errs != nil {
			t.Errorf("Validate: %v", errs)
		}
	}
}

func TestRequestAuthValidate(t *testing.T) {
	const jwks = `{"keys":[{"kty":"EC","crv":"P-256","kid":"2026-11","x":"ImM7j4hI3x_4xg4XQ-33925j0v4sng7DFoPTuQXyD1M","y":"FX2A13FfjQJa8VimtynWvVYfS37TZl8nSvRzfo1H9Hs"}]}`
	tests := []struct {
		name string
		spec v1.RequestAuthSpec
		want []string // substrings of the errors, in order
	}{
		{name: "no issuers", spec: v1.RequestAuthSpec{}, want: []string{"spec.issuers: at least one issuer is required"}},
		{
			name: "both key sources",
			spec: v1.RequestAuthSpec{Issuers: []v1.JWTIssuer{{Issuer: "a", JWKS: jwks, JWKSURI: "https://idp/keys"}}},
			want: []string{"spec.issuers[0]: jwks and jwksUri are both set"},
		},
		{
			name: "neither key source",
			spec: v1.RequestAuthSpec{Issuers: []v1.JWTIssuer{{Issuer: "a"}}},
			want: []string{"spec.issuers[0]: set exactly one of jwks or jwksUri"},
		},
		{
			name: "remote settings without a URI",
			spec: v1.RequestAuthSpec{Issuers: []v1.JWTIssuer{{Issuer: "a", JWKS: jwks, JWKSTimeout: dur(time.Second)}}},
			want: []string{"spec.issuers[0].jwksTimeout: applies only to keys fetched from jwksUri"},
		},
		{
			name: "plain http",
			spec: v1.RequestAuthSpec{Issuers: []v1.JWTIssuer{{Issuer: "a", JWKSURI: "http://idp/keys"}}},
			want: []string{`spec.issuers[0].jwksUri: "http://idp/keys" must be an https URL`},
		},
		{
			name: "bad inline set and CA",
			spec: v1.RequestAuthSpec{Issuers: []v1.JWTIssuer{{Issuer: "a", JWKS: `{"keys":[]}`}, {Issuer: "b", JWKSURI: "https://idp/k", JWKSCA: "junk"}}},
			want: []string{"spec.issuers[0].jwks: holds no keys", "spec.issuers[1].jwksCA: holds something other than PEM certificates"},
		},
		{
			name: "no usable key",
			spec: v1.RequestAuthSpec{Issuers: []v1.JWTIssuer{{Issuer: "a", JWKS: `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"EC","crv":"P-384","x":"AA","y":"AA"},{"kty":"oct","k":"c2VjcmV0"}]}`}}},
			want: []string{"spec.issuers[0].jwks: holds no RS256 (RSA of at least 2048 bits) or ES256 (EC P-256) signing key"},
		},
		{
			name: "duplicate issuer and bad token locations",
			spec: v1.RequestAuthSpec{Issuers: []v1.JWTIssuer{
				{Issuer: "a", JWKS: jwks},
				{Issuer: "a", JWKS: jwks, FromHeaders: []v1.JWTHeader{{Name: "X-Token"}}, FromParams: []string{"a=b"}},
			}},
			want: []string{
				"spec.issuers[1].fromHeaders[0].name:", "spec.issuers[1].fromParams[0]:",
				`spec.issuers[1].issuer: duplicate issuer "a": spec.issuers[0] has it too`,
			},
		},
		{
			name: "rules",
			spec: v1.RequestAuthSpec{
				Issuers: []v1.JWTIssuer{{Issuer: "a", JWKS: jwks}},
				Rules: []v1.RequestAuthRule{
					{Paths: []string{"/admin/", "admin"}, RouteRules: []string{"Bad"}, Issuers: []string{"b"}},
					{Require: true},
					{Paths: []string{"/late"}},
				},
			},
			want: []string{
				`spec.rules[0].paths[0]: "/admin/" must not end with '/'`,
				`spec.rules[0].paths[1]: "admin" must start with '/'`,
				`spec.rules[0].routeRules[0]: "Bad" is not a valid rule name`,
				`spec.rules[0].issuers[0]: "b" is not one of spec.issuers[].issuer`,
				"spec.rules[2]: is shadowed by spec.rules[1]",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Default()
			errs := tt.spec.Validate(v1.NewPath("spec"))
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), errs)
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tt.want[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, e.Error(), tt.want[i])
				}
			}
		})
	}
}

func TestRequestAuthReferences(t *testing.T) {
	ra := &v1.Object{APIVersion: v1.APIVersion, Kind: "RequestAuth", Metadata: meta("shop", "catalog"),
		Spec: &v1.RequestAuthSpec{
			Issuers: []v1.JWTIssuer{{Issuer: "a", JWKS: `{"keys":[{}]}`}},
			Rules:   []v1.RequestAuthRule{{RouteRules: []string{"checkout", "missing"}, Require: true}},
		}}
	route := &v1.Object{APIVersion: v1.APIVersion, Kind: "Route", Metadata: meta("shop", "catalog-routes"),
		Spec: &v1.RouteSpec{Service: "catalog", Rules: []v1.RouteRule{{Name: "checkout", Backends: []v1.Backend{{Service: "catalog"}}}}}}
	svc := &v1.Object{APIVersion: v1.APIVersion, Kind: "Service", Metadata: meta("shop", "catalog"),
		Spec: &v1.ServiceSpec{Ports: []v1.ServicePort{{Port: 8080, Protocol: v1.ProtocolHTTP}}}}

	errs := v1.CheckReferences([]*v1.Object{ra, route, svc}, nil, nil)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `RequestAuth shop/catalog: spec.rules[0].routeRules[1]: the Route of service "catalog" has no rule named "missing"`) {
		t.Errorf("with its Route: %v", errs)
	}
	errs = v1.CheckReferences([]*v1.Object{ra}, nil, nil)
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), `service "catalog" has no Route`) {
		t.Errorf("without a Route: %v", errs)
	}
	tcp := &v1.Object{APIVersion: v1.APIVersion, Kind: "Service", Metadata: meta("shop", "catalog"),
		Spec: &v1.ServiceSpec{Ports: []v1.ServicePort{{Port: 5432, Protocol: v1.ProtocolTCP}}}}
	errs = v1.CheckReferences([]*v1.Object{ra, tcp}, nil, nil)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "speaks tcp") {
		t.Errorf("tcp service: %v", errs)
	}
}

// TestRouteKeepsRequestAuthRules: a Route may not drop a rule that the
// stored RequestAuth of its service requires a token on.
func TestRouteKeepsRequestAuthRules(t *testing.T) {
	ra := &v1.Object{APIVersion: v1.APIVersion, Kind: "RequestAuth", Metadata: meta("shop", "catalog"),
		Spec: &v1.RequestAuthSpec{
			Issuers: []v1.JWTIssuer{{Issuer: "a", JWKS: `{"keys":[{}]}`}},
			Rules:   []v1.RequestAuthRule{{RouteRules: []string{"checkout"}, Require: true}},
		}}
	route := func(rule string) *v1.Object {
		return &v1.Object{APIVersion: v1.APIVersion, Kind: "Route", Metadata: meta("shop", "catalog"),
			Spec: &v1.RouteSpec{Service: "catalog", Rules: []v1.RouteRule{{Name: rule, Backends: []v1.Backend{{Service: "catalog"}}}}}}
	}
	svc := &v1.Object{APIVersion: v1.APIVersion, Kind: "Service", Metadata: meta("shop", "catalog"),
		Spec: &v1.ServiceSpec{Ports: []v1.ServicePort{{Port: 8080, Protocol: v1.ProtocolHTTP}}}}
	known := func(kind, namespace, name string) (*v1.Object, bool) {
		if namespace != "shop" || name != "catalog" {
			return nil, false
		}
		switch kind {
		case "RequestAuth":
			return ra, true
		case "Service":
			return svc, true
		}
		return nil, false
	}
	if errs := v1.CheckReferences([]*v1.Object{route("checkout")}, known, nil); len(errs) != 0 {
		t.Errorf("a Route keeping the rule: %v", errs)
	}
	errs := v1.CheckReferences([]*v1.Object{route("pay")}, known, nil)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `Route shop/catalog: spec.rules: has no rule named "checkout", which RequestAuth shop/catalog names in spec.rules[0].routeRules[0]`) {
		t.Errorf("a Route dropping the rule: %v", errs)
	}
	// Applied together, the RequestAuth's own check speaks.
	errs = v1.CheckReferences([]*v1.Object{route("pay"), ra}, known, nil)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "RequestAuth shop/catalog: spec.rules[0].routeRules[0]") {
		t.Errorf("applied together: %v", errs)
	}
}
