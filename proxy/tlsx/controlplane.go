package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/weftmesh/weft/api/spiffe"
)

// ControlPlaneClient is the TLS config of a proxy's connections to the
// control plane. It authenticates the control plane by its SPIFFE ID under the
// mesh root rather than by host name, so any address of it works.
func ControlPlaneClient(roots *x509.CertPool, cert func() *tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("control plane presented no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
				return fmt.Errorf("control plane certificate: %w", err)
			}
			id, err := spiffe.FromCert(cs.PeerCertificates[0])
			if err != nil {
				return fmt.Errorf("control plane certificate: %w", err)
			}
			if !id.IsControlPlane() {
				return fmt.Errorf("control plane certificate is for %s, not the control plane", id)
			}
			return nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := cert(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
	}
}
