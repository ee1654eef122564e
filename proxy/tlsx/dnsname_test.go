package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/internal/testpki"
)

// TestPeerValidatorDNSName: a server outside the mesh is verified by its
// chain and by the host name its certificate is valid for.
func TestPeerValidatorDNSName(t *testing.T) {
	ca := testpki.NewCA(t, "partner")
	cert := ca.Issue(t, spiffe.ID{}, testpki.Options{DNSNames: []string{"api.partner.example", "*.cdn.partner.example"}})
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}}
	bundle := bundleOf(t, ca)
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"api.partner.example", true},
		{"x.cdn.partner.example", true},
		{"other.partner.example", false},
		{"a.b.cdn.partner.example", false},
		{"", true}, // no name: the chain alone, as for mesh peers
	} {
		v := &PeerValidator{Bundle: func() *TrustBundle { return bundle }, Usage: x509.ExtKeyUsageServerAuth, DNSName: tt.name}
		if err := v.Verify(cs); (err == nil) != tt.ok {
			t.Errorf("DNSName %q: err = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
