package v1alpha1

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMeshSpecDefault(t *testing.T) {
	tests := []struct {
		name string
		spec MeshSpec
		want MeshSpec
	}{
		{
			name: "empty",
			want: MeshSpec{MTLS: MTLS{Mode: MTLSStrict}, CertificateTTL: Duration{24 * time.Hour}},
		},
		{
			name: "set fields are kept",
			spec: MeshSpec{TrustDomain: "example.org", MTLS: MTLS{Mode: "OTHER"}, CertificateTTL: Duration{time.Hour}},
			want: MeshSpec{TrustDomain: "example.org", MTLS: MTLS{Mode: "OTHER"}, CertificateTTL: Duration{time.Hour}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Default()
			if !reflect.DeepEqual(tt.spec, tt.want) {
				t.Errorf("after Default: %+v, want %+v", tt.spec, tt.want)
			}
		})
	}
}

func TestMeshSpecValidate(t *testing.T) {
	const tdRule = "is not a valid trust domain: use a lowercase DNS name (letters, digits, '-' and '.', at most 255 characters)"
	tests := []struct {
		name string
		spec MeshSpec
		want []string
	}{
		{name: "defaults"},
		{name: "trust domain", spec: MeshSpec{TrustDomain: "prod.example-1.org"}},
		{name: "shortest TTL", spec: MeshSpec{CertificateTTL: Duration{time.Minute}}},
		{name: "longest TTL", spec: MeshSpec{CertificateTTL: Duration{720 * time.Hour}}},
		{name: "upper-case trust domain", spec: MeshSpec{TrustDomain: "Example.org"}, want: []string{`spec.trustDomain: "Example.org" ` + tdRule}},
		{name: "underscore", spec: MeshSpec{TrustDomain: "my_td"}, want: []string{`spec.trustDomain: "my_td" ` + tdRule}},
		{name: "empty label", spec: MeshSpec{TrustDomain: "a..b"}, want: []string{`spec.trustDomain: "a..b" ` + tdRule}},
		{name: "trailing dot", spec: MeshSpec{TrustDomain: "a.b."}, want: []string{`spec.trustDomain: "a.b." ` + tdRule}},
		{
			name: "too long",
			spec: MeshSpec{TrustDomain: strings.Repeat("a.", 128)[:256]},
			want: []string{`spec.trustDomain: "` + strings.Repeat("a.", 32) + `"... ` + tdRule},
		},
		{
			name: "mode",
			spec: MeshSpec{MTLS: MTLS{Mode: "DISABLE"}},
			want: []string{`spec.mtls.mode: unsupported value "DISABLE": must be one of STRICT, PERMISSIVE`},
		},
		{
			name: "mode is case-sensitive",
			spec: MeshSpec{MTLS: MTLS{Mode: "strict"}},
			want: []string{`spec.mtls.mode: unsupported value "strict": must be one of STRICT, PERMISSIVE`},
		},
		{
			name: "TTL too short",
			spec: MeshSpec{CertificateTTL: Duration{59 * time.Second}},
			want: []string{`spec.certificateTTL: must be between 1m and 720h, got 59s`},
		},
		{
			name: "TTL too long",
			spec: MeshSpec{CertificateTTL: Duration{721 * time.Hour}},
			want: []string{`spec.certificateTTL: must be between 1m and 720h, got 721h0m0s`},
		},
		{
			name: "negative TTL",
			spec: MeshSpec{CertificateTTL: Duration{-time.Hour}},
			want: []string{`spec.certificateTTL: must be between 1m and 720h, got -1h0m0s`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Default()
			assertErrors(t, tt.spec.Validate(NewPath("spec")), tt.want)
		})
	}
}
