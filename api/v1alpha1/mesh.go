package v1alpha1

// MeshSpec is mesh-wide configuration. There is at most one Mesh, named "default".
type MeshSpec struct {
	// TrustDomain, if set, must equal the control plane's trust domain
	// (fixed by `weft control --trust-domain` at first start).
	TrustDomain string `json:"trustDomain,omitempty"`
	MTLS        MTLS   `json:"mtls,omitempty"`
	// CertificateTTL is the lifetime of workload SVIDs: default 24h, from 1m to 720h.
	CertificateTTL Duration `json:"certificateTTL,omitempty"`
}

// MTLS configures mutual TLS between proxies.
type MTLS struct {
	// Mode is STRICT (the default: plaintext refused).
	Mode MTLSMode `json:"mode,omitempty"`
}

// MTLSMode says whether plaintext is accepted on inbound listeners.
type MTLSMode string

const (
	MTLSStrict MTLSMode = "STRICT"
)
