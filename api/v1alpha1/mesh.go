package v1alpha1

import (
	"slices"
	"time"
)

func init() {
	Register(Kind{
		Name:      "Mesh",
		Plural:    "meshes",
		FixedName: "default",
		NewSpec:   func() Spec { return new(MeshSpec) },
	})
}

// Bounds of MeshSpec.CertificateTTL.
const (
	DefaultCertificateTTL = 24 * time.Hour
	MinCertificateTTL     = time.Minute
	MaxCertificateTTL     = 720 * time.Hour
)

// maxTrustDomainLength is the longest trust domain SPIFFE allows.
const maxTrustDomainLength = 255

// MeshSpec is mesh-wide configuration. There is at most one Mesh, named "default".
type MeshSpec struct {
	// TrustDomain, if set, must equal the control plane's trust domain
	// (fixed by `weft control --trust-domain` at first start).
	TrustDomain string `json:"trustDomain,omitempty"`
	MTLS        MTLS   `json:"mtls,omitempty"`
	// CertificateTTL is the lifetime of workload SVIDs: default 24h, from 1m to 720h.
	CertificateTTL Duration `json:"certificateTTL,omitempty"`
	// Tracing, if set, makes every proxy record and export spans.
	Tracing *Tracing `json:"tracing,omitempty"`
	// AccessLog configures the proxies' access logs; without it they log
	// policy denials as JSON to stdout (accesslog.go).
	AccessLog *AccessLog `json:"accessLog,omitempty"`
	// OutboundTrafficPolicy says what a proxy does with a call to a host
	// that is neither a mesh service nor an ExternalService
	// (externalservice.go).
	OutboundTrafficPolicy *OutboundTrafficPolicy `json:"outboundTrafficPolicy,omitempty"`
}

// MTLS configures mutual TLS between proxies.
type MTLS struct {
	// Mode is STRICT (the default: plaintext refused) or PERMISSIVE
	// (plaintext and mutual TLS both accepted on the inbound port). A
	// Service may override it for its own workloads.
	Mode MTLSMode `json:"mode,omitempty"`
}

// MTLSMode says whether plaintext is accepted on inbound listeners.
type MTLSMode string

const (
	// MTLSStrict accepts mutual TLS from mesh proxies only.
	MTLSStrict MTLSMode = "STRICT"
	// MTLSPermissive accepts mutual TLS and plaintext on the same port, as
	// while clients outside the mesh move in. Plaintext requests have no
	// peer identity: AccessPolicies see them as unauthenticated.
	MTLSPermissive MTLSMode = "PERMISSIVE"
)

// mtlsModes are the modes Validate accepts.
var mtlsModes = []MTLSMode{MTLSStrict, MTLSPermissive}

// Default sets mTLS to STRICT and the certificate TTL to 24h when unset.
func (s *MeshSpec) Default() {
	if s.MTLS.Mode == "" {
		s.MTLS.Mode = MTLSStrict
	}
	if s.CertificateTTL.Duration == 0 {
		s.CertificateTTL.Duration = DefaultCertificateTTL
	}
	if s.Tracing != nil {
		s.Tracing.Default()
	}
	if s.AccessLog != nil {
		s.AccessLog.Default()
	}
	if s.OutboundTrafficPolicy != nil && s.OutboundTrafficPolicy.Mode == "" {
		s.OutboundTrafficPolicy.Mode = OutboundAllowAny
	}
}

// Validate checks a defaulted MeshSpec.
func (s *MeshSpec) Validate(path *Path) ErrorList {
	var errs ErrorList
	if td := s.TrustDomain; td != "" && !isDNSName(td, maxTrustDomainLength) {
		errs = append(errs, Invalid(path.Child("trustDomain"),
			"%s is not a valid trust domain: use a lowercase DNS name (letters, digits, '-' and '.', at most 255 characters)", quote(td)))
	}
	if mode := path.Child("mtls").Child("mode"); !slices.Contains(mtlsModes, s.MTLS.Mode) {
		errs = append(errs, NotSupported(mode, s.MTLS.Mode, mtlsModes))
	}
	if ttl := s.CertificateTTL.Duration; ttl < MinCertificateTTL || ttl > MaxCertificateTTL {
		errs = append(errs, Invalid(path.Child("certificateTTL"), "must be between 1m and 720h, got %s", ttl))
	}
	if s.Tracing != nil {
		errs = append(errs, s.Tracing.Validate(path.Child("tracing"))...)
	}
	if s.AccessLog != nil {
		errs = append(errs, s.AccessLog.Validate(path.Child("accessLog"))...)
	}
	if m := s.OutboundMode(); !slices.Contains(outboundModes, m) {
		errs = append(errs, NotSupported(path.Child("outboundTrafficPolicy").Child("mode"), m, outboundModes))
	}
	return errs
}

var _ Spec = (*MeshSpec)(nil)
