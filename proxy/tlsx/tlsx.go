// Package tlsx builds the proxy's TLS configurations: the certificate is the
// proxy's own SVID, read from its Identity at every handshake so rotation
// needs no reload; peers are verified against the trust bundle current at
// handshake time (served over SDS as ROOTCA) and their SPIFFE IDs against
// subject-alternative-name matchers.
package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// Identity is the proxy's own SVID, rotated in place. Certificate returns
// nil before the proxy has joined and after its SVID has expired without
// being renewed; handshakes then fail with ErrNoSVID.
type Identity interface {
	Certificate() *tls.Certificate
}

// IdentityFunc adapts a function to an Identity.
type IdentityFunc func() *tls.Certificate

// Certificate calls f.
func (f IdentityFunc) Certificate() *tls.Certificate { return f() }

var _ Identity = IdentityFunc(nil)

// ErrNoSVID is returned during a handshake when the proxy has no SVID yet.
var ErrNoSVID = errors.New("tlsx: the proxy has no SVID yet")

// TrustBundle is a set of roots the mesh trusts.
type TrustBundle struct {
	pool  *x509.CertPool
	roots []*x509.Certificate
}

// NewTrustBundle parses PEM certificates. Anything but CERTIFICATE blocks,
// or no certificate at all, is an error.
func NewTrustBundle(pemBytes []byte) (*TrustBundle, error) {
	b := &TrustBundle{pool: x509.NewCertPool()}
	for rest := pemBytes; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("tlsx: trust bundle: unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tlsx: trust bundle: certificate %d: %w", len(b.roots), err)
		}
		b.pool.AddCert(c)
		b.roots = append(b.roots, c)
	}
	if len(b.roots) == 0 {
		return nil, errors.New("tlsx: trust bundle: no PEM certificate found")
	}
	return b, nil
}

// Roots returns the bundle's certificates. The caller must not modify them.
func (b *TrustBundle) Roots() []*x509.Certificate { return b.roots }

// Pool returns the bundle as a certificate pool. The caller must not modify it.
func (b *TrustBundle) Pool() *x509.CertPool { return b.pool }
