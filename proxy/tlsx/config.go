package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// PeerValidator verifies the certificate chain a peer presents. It is
// consulted on every handshake, so a new trust bundle or SVID applies to the
// next connection without rebuilding any tls.Config.
type PeerValidator struct {
	// Bundle returns the trust bundle current at handshake time, or nil when
	// it has not been received yet (every handshake then fails).
	Bundle func() *TrustBundle
	// BundleName names the bundle in errors (the SDS secret's name).
	BundleName string
	// URISANs are matched against the peer's URI SANs; one match on any SAN
	// is enough. Empty accepts any chain the bundle verifies.
	URISANs []StringMatcher
	// DNSName, if set, is the host name the peer's certificate must be
	// valid for (x509 hostname rules, wildcards included): a server outside
	// the mesh, reached with TLS the mesh originates, has no SPIFFE ID.
	DNSName string
	// Usage is the extended key usage the peer's certificate must allow:
	// ExtKeyUsageClientAuth on the server side, ExtKeyUsageServerAuth on the
	// client side.
	Usage x509.ExtKeyUsage
	// Optional accepts a peer that presents no certificate at all.
	Optional bool
	// Now returns the verification time; nil means time.Now.
	Now func() time.Time
}

// ErrNoPeerCertificate is returned when a required peer certificate is missing.
var ErrNoPeerCertificate = errors.New("tlsx: peer presented no certificate")

// Verify checks a completed handshake's peer chain: it must lead to the
// current bundle, be valid now, allow the expected usage, and carry a URI
// SAN accepted by one of the matchers.
func (v *PeerValidator) Verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		if v.Optional {
			return nil
		}
		return ErrNoPeerCertificate
	}
	bundle := v.Bundle()
	if bundle == nil {
		return fmt.Errorf("tlsx: trust bundle %q not received yet", v.BundleName)
	}
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{Roots: bundle.pool, KeyUsages: []x509.ExtKeyUsage{v.Usage}, DNSName: v.DNSName}
	if v.Now != nil {
		opts.CurrentTime = v.Now()
	}
	if len(cs.PeerCertificates) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("tlsx: peer certificate: %w", err)
	}
	if len(v.URISANs) == 0 {
		return nil
	}
	for _, u := range leaf.URIs {
		s := u.String()
		for _, m := range v.URISANs {
			if m.Match(s) {
				return nil
			}
		}
	}
	return &SANError{URIs: uriStrings(leaf), Want: v.URISANs}
}

// SANError says a peer's certificate verified but its identity is not one
// the validator accepts.
type SANError struct {
	URIs []string
	Want []StringMatcher
}

func (e *SANError) Error() string {
	want := make([]string, len(e.Want))
	for i, m := range e.Want {
		want[i] = m.String()
	}
	return fmt.Sprintf("tlsx: peer URI SANs [%s] match none of [%s]",
		strings.Join(e.URIs, ", "), strings.Join(want, ", "))
}

func uriStrings(c *x509.Certificate) []string {
	out := make([]string, len(c.URIs))
	for i, u := range c.URIs {
		out[i] = u.String()
	}
	return out
}

// ServerConfig returns the configuration of a listener that terminates
// mutual TLS: TLS 1.3 only, the SVID from id, the client verified by peer.
// A nil peer asks for no client certificate.
func ServerConfig(id Identity, peer *PeerValidator, alpn []string) *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: alpn,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return svid(id)
		},
	}
	if peer == nil {
		return c
	}
	// The chain is verified by hand, against the bundle current at this
	// handshake, rather than through a ClientCAs pool fixed at build time.
	c.ClientAuth = tls.RequireAnyClientCert
	if peer.Optional {
		c.ClientAuth = tls.RequestClientCert
	}
	c.VerifyConnection = peer.Verify
	return c
}

// ClientConfig returns the configuration of a mutual-TLS connection to an
// upstream: TLS 1.3 only, the SVID from id, the server verified by peer.
// serverName only sets SNI; identity comes from the URI SAN.
func ClientConfig(id Identity, peer *PeerValidator, alpn []string, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: alpn,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return svid(id)
		},
		// Go's own verification would check a DNS name; the mesh verifies
		// the chain and the SPIFFE ID in VerifyConnection instead.
		InsecureSkipVerify: true,
		VerifyConnection:   peer.Verify,
	}
}

func svid(id Identity) (*tls.Certificate, error) {
	if id == nil {
		return nil, ErrNoSVID
	}
	c := id.Certificate()
	if c == nil {
		return nil, ErrNoSVID
	}
	return c, nil
}
