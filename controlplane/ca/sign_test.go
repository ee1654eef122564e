package ca_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/store/storetest"
)

var payments = spiffe.ID{TrustDomain: "weft.local", Namespace: "default", Service: "payments"}

func newCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// newKey generates a private key of the given kind.
func newKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var (
		key crypto.Signer
		err error
	)
	switch kind {
	case "ecdsa-p256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ecdsa-p521":
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case "rsa-1024":
		key, err = rsa.GenerateKey(rand.Reader, 1024)
	case "rsa-2048":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func parseChain(t testing.TB, chain [][]byte) *x509.Certificate {
	t.Helper()
	if len(chain) != 1 {
		t.Fatalf("chain holds %d certificates, want the leaf alone", len(chain))
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func TestSignCSR(t *testing.T) {
	c := load(t, storetest.New(t).Client(), "weft.local")
	root := rootOf(t, c)

	for _, name := range []string{"ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-2048"} {
		t.Run(name, func(t *testing.T) {
			key := newKey(t, name)
			const ttl = 2 * time.Hour
			before := time.Now()
			chain, err := c.SignCSR(newCSR(t, key, nil), payments, ttl)
			if err != nil {
				t.Fatal(err)
			}
			leaf := parseChain(t, chain)

			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageAny} {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.TrustBundlePool(), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Errorf("verify for %v: %v", usage, err)
				}
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://weft.local/ns/default/sa/payments" {
				t.Errorf("URI SANs = %v", leaf.URIs)
			}
			if id, err := spiffe.FromCert(leaf); err != nil || id != payments {
				t.Errorf("FromCert = %v, %v", id, err)
			}
			if leaf.Subject.CommonName != "" || len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
				t.Errorf("identity outside the URI SAN: CN %q, DNS %v, IP %v, email %v",
					leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
			}
			if leaf.IsCA {
				t.Error("leaf is a CA")
			}
			if d := leaf.NotBefore.Sub(before.Add(-time.Minute)); d < -2*time.Second || d > 2*time.Second {
				t.Errorf("NotBefore = %v, want a minute before signing", leaf.NotBefore)
			}
			if d := leaf.NotAfter.Sub(before.Add(ttl)); d < -2*time.Second || d > 2*time.Second {
				t.Errorf("NotAfter = %v, want %v after signing", leaf.NotAfter, ttl)
			}
			wantUsage := x509.KeyUsageDigitalSignature
			if name == "rsa-2048" {
				wantUsage |= x509.KeyUsageKeyEncipherment
			}
			if leaf.KeyUsage != wantUsage {
				t.Errorf("KeyUsage = %b, want %b", leaf.KeyUsage, wantUsage)
			}
			if len(leaf.ExtKeyUsage) != 2 {
				t.Errorf("ExtKeyUsage = %v, want ServerAuth and ClientAuth", leaf.ExtKeyUsage)
			}
			if len(root.SubjectKeyId) == 0 || !bytes.Equal(leaf.AuthorityKeyId, root.SubjectKeyId) {
				t.Errorf("AuthorityKeyId = %x, want the root's %x", leaf.AuthorityKeyId, root.SubjectKeyId)
			}
			if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %x is not a positive 128-bit number", leaf.SerialNumber)
			}
			if pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
				t.Error("the leaf does not certify the CSR's key")
			}
		})
	}
}

func TestSignCSRIgnoresRequestedNames(t *testing.T) {
	c := load(t, storetest.New(t).Client(), "weft.local")
	key := newKey(t, "ecdsa-p256")
	evil, _ := url.Parse("spiffe://weft.local/ns/kube-system/sa/admin")
	csr := newCSR(t, key, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "admin"},
		DNSNames:    []string{"payments.default.svc"},
		IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)},
		URIs:        []*url.URL{evil},
	})
	chain, err := c.SignCSR(csr, payments, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseChain(t, chain)
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != payments.String() ||
		leaf.Subject.CommonName != "" || len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 {
		t.Errorf("requested names leaked into the SVID: CN %q URIs %v DNS %v IP %v",
			leaf.Subject.CommonName, leaf.URIs, leaf.DNSNames, leaf.IPAddresses)
	}
}

func TestSignCSRCapsAtRootExpiry(t *testing.T) {
	c := load(t, storetest.New(t).Client(), "weft.local")
	key := newKey(t, "ecdsa-p256")
	chain, err := c.SignCSR(newCSR(t, key, nil), payments, 50*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, root := parseChain(t, chain), rootOf(t, c); !leaf.NotAfter.Equal(root.NotAfter) {
		t.Errorf("NotAfter = %v, want the root's %v", leaf.NotAfter, root.NotAfter)
	}
}

func TestSignCSRRejects(t *testing.T) {
	c := load(t, storetest.New(t).Client(), "weft.local")
	p256 := newKey(t, "ecdsa-p256")
	good := newCSR(t, p256, nil)
	badSig := bytes.Clone(good)
	badSig[len(badSig)-1] ^= 0xff

	tests := []struct {
		name    string
		csr     []byte
		id      spiffe.ID
		ttl     time.Duration
		badCSR  bool // the error wraps ErrInvalidCSR
		wantErr string
	}{
		{name: "bad signature", csr: badSig, badCSR: true, wantErr: "signature does not verify"},
		{name: "rsa-1024", csr: newCSR(t, newKey(t, "rsa-1024"), nil), badCSR: true,
			wantErr: "RSA key of 1024 bits is too weak; at least 2048 are required"},
		{name: "p-521", csr: newCSR(t, newKey(t, "ecdsa-p521"), nil), badCSR: true,
			wantErr: "ECDSA curve P-521 is not accepted"},
		{name: "garbage", csr: []byte("not a csr"), badCSR: true, wantErr: "invalid certificate signing request"},
		{name: "empty", csr: nil, badCSR: true, wantErr: "empty"},
		{name: "oversized", csr: make([]byte, 64<<10), badCSR: true, wantErr: "at most"},
		{name: "other trust domain", csr: good, id: spiffe.ID{TrustDomain: "evil.example", Namespace: "default", Service: "payments"},
			wantErr: `outside trust domain "weft.local"`},
		{name: "bad name", csr: good, id: spiffe.ID{TrustDomain: "weft.local", Namespace: "default", Service: "pay/ments"},
			wantErr: "must be DNS labels"},
		{name: "negative ttl", csr: good, ttl: -1, wantErr: "not positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.id == (spiffe.ID{}) {
				tc.id = payments
			}
			if tc.ttl == 0 {
				tc.ttl = time.Hour
			}
			chain, err := c.SignCSR(tc.csr, tc.id, tc.ttl)
			if err == nil {
				t.Fatalf("signed: %d certificates", len(chain))
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not say %q", err, tc.wantErr)
			}
			if errors.Is(err, ca.ErrInvalidCSR) != tc.badCSR {
				t.Errorf("errors.Is(%q, ErrInvalidCSR) = %v, want %v", err, !tc.badCSR, tc.badCSR)
			}
		})
	}
}

func TestServingCertificate(t *testing.T) {
	c := load(t, storetest.New(t).Client(), "weft.local")
	cert, err := c.ServingCertificate([]string{"localhost", "127.0.0.1", "::1", "[::1]", "weft.example.com", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.TrustBundlePool(), DNSName: "weft.example.com"}); err != nil {
		t.Errorf("verify as weft.example.com: %v", err)
	}
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("VerifyHostname(%s): %v", host, err)
		}
	}
	if len(leaf.DNSNames) != 2 || len(leaf.IPAddresses) != 2 {
		t.Errorf("SANs not deduplicated: DNS %v IP %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if id, err := spiffe.FromCert(leaf); err != nil || id != c.ControlPlaneID() {
		t.Errorf("FromCert = %v, %v; want %v", id, err, c.ControlPlaneID())
	}
	if got, want := c.ControlPlaneID().String(), "spiffe://weft.local/ns/weft-system/sa/weft-control"; got != want {
		t.Errorf("ControlPlaneID = %s, want %s", got, want)
	}
	if _, err := c.ServingCertificate([]string{"not a host"}, time.Hour); err == nil {
		t.Error("accepted a host with spaces")
	}
}

// BenchmarkSignCSR measures signing throughput: every iteration parses and
// verifies a P-256 CSR and signs an SVID, as one Identity.Sign call does.
func BenchmarkSignCSR(b *testing.B) {
	c := load(b, storetest.New(b).Client(), "weft.local")
	csr := newCSR(b, newKey(b, "ecdsa-p256"), nil)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.SignCSR(csr, payments, 24*time.Hour); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "csrs/s")
}
