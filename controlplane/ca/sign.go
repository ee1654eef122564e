package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/weftmesh/weft/api/spiffe"
)

const (
	// clockSkew backdates every certificate so that peers whose clocks run a
	// little behind the control plane's accept it at once.
	clockSkew = time.Minute
	// maxCSRSize bounds the work an unauthenticated-looking request can cause;
	// an RSA-8192 CSR is under 2 KiB.
	maxCSRSize = 16 << 10
	minRSABits = 2048
	maxRSABits = 8192
)

// ErrInvalidCSR is wrapped by every error SignCSR returns because of the
// request itself rather than the CA.
var ErrInvalidCSR = errors.New("invalid certificate signing request")

// serialLimit bounds serial numbers to 128 random bits (RFC 5280 allows 20 octets).
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// SignCSR issues an X.509 SVID for id to the key in csrDER, a PKCS #10 request
// in DER, valid for ttl or until the root expires, whichever comes first. It
// returns the chain, leaf first, in DER. Only the request's public key is
// used: its subject and requested extensions are ignored, and the identity is
// the certificate's single URI SAN.
//
// The key must be ECDSA P-256 or P-384, Ed25519, or RSA of 2048 to 8192 bits.
func (c *CA) SignCSR(csrDER []byte, id spiffe.ID, ttl time.Duration) ([][]byte, error) {
	if err := c.checkID(id); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("ca: SVID lifetime %s is not positive", ttl)
	}
	csr, err := parseCSR(csrDER)
	if err != nil {
		return nil, err
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		usage |= x509.KeyUsageKeyEncipherment // RSA key exchange in TLS 1.2
	}
	tmpl := &x509.Certificate{
		URIs:        []*url.URL{id.URL()},
		KeyUsage:    usage,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	chain, err := c.issue(tmpl, csr.PublicKey, ttl, false)
	if err != nil {
		return nil, fmt.Errorf("ca: sign SVID for %s: %w", id, err)
	}
	return chain, nil
}

// ServingCertificate issues the control plane's own TLS certificate, with a
// fresh ECDSA P-256 key, valid for ttl or until the root expires. hosts are
// the names clients dial: each becomes an IP or DNS SAN. The certificate also
// carries the control plane's SPIFFE ID (see ControlPlaneID), which is what
// proxies check.
func (c *CA) ServingCertificate(hosts []string, ttl time.Duration) (tls.Certificate, error) {
	if ttl <= 0 {
		return tls.Certificate{}, fmt.Errorf("ca: serving certificate lifetime %s is not positive", ttl)
	}
	tmpl := &x509.Certificate{
		URIs:        []*url.URL{c.ControlPlaneID().URL()},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
			continue
		}
		if !validDNSName(h) {
			return tls.Certificate{}, fmt.Errorf("ca: serving certificate host %q is neither an IP address nor a DNS name", h)
		}
		if !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: generate serving key: %w", err)
	}
	chain, err := c.issue(tmpl, &key.PublicKey, ttl, true)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: issue serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: parse serving certificate: %w", err)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// issue completes tmpl with a serial number, a validity period and the
// issuer's key ID, and signs it for pub. It returns the chain, leaf first;
// serving adds what only the control plane's own chain carries.
func (c *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, ttl time.Duration, serving bool) ([][]byte, error) {
	a := c.current.Load()
	now := time.Now()
	if !now.Before(a.cert.NotAfter) {
		return nil, fmt.Errorf("the signing certificate %q expired at %s", a.cert.Subject.CommonName, a.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = latest(now.Add(-clockSkew), a.cert.NotBefore)
	tmpl.NotAfter = earliest(now.Add(ttl), a.cert.NotAfter)
	tmpl.BasicConstraintsValid = true
	tmpl.AuthorityKeyId = a.cert.SubjectKeyId

	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, pub, a.key)
	if err != nil {
		return nil, err
	}
	chain := make([][]byte, 0, 1+len(a.intermediates)+len(a.servingExtra))
	chain = append(append(chain, der), a.intermediates...)
	if serving {
		chain = append(chain, a.servingExtra...)
	}
	return chain, nil
}

// parseCSR parses a PKCS #10 request, checks its key type and size, and
// verifies its signature, the proof that the caller holds the private key.
func parseCSR(der []byte) (*x509.CertificateRequest, error) {
	if len(der) == 0 {
		return nil, fmt.Errorf("ca: %w: empty", ErrInvalidCSR)
	}
	if len(der) > maxCSRSize {
		return nil, fmt.Errorf("ca: %w: %d bytes, at most %d allowed", ErrInvalidCSR, len(der), maxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("ca: %w: %w", ErrInvalidCSR, err)
	}
	if err := checkPublicKey(csr); err != nil {
		return nil, fmt.Errorf("ca: %w: %w", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("ca: %w: signature does not verify: %w", ErrInvalidCSR, err)
	}
	return csr, nil
}

func checkPublicKey(csr *x509.CertificateRequest) error {
	switch pub := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s is not accepted; use P-256 or P-384", pub.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		switch bits := pub.N.BitLen(); {
		case bits < minRSABits:
			return fmt.Errorf("RSA key of %d bits is too weak; at least %d are required", bits, minRSABits)
		case bits > maxRSABits:
			return fmt.Errorf("RSA key of %d bits is larger than the %d accepted", bits, maxRSABits)
		}
		return nil
	default:
		return fmt.Errorf("public key algorithm %s is not accepted; use ECDSA P-256/P-384, Ed25519 or RSA",
			csr.PublicKeyAlgorithm)
	}
}

// checkID refuses identities outside the mesh's trust domain and names that
// would not survive a round trip through a URI.
func (c *CA) checkID(id spiffe.ID) error {
	if id.TrustDomain != c.trustDomain {
		return fmt.Errorf("ca: %s is outside trust domain %q", id, c.trustDomain)
	}
	if !validLabel(id.Namespace) || !validLabel(id.Service) {
		return fmt.Errorf("ca: %s: namespace and service must be DNS labels", id)
	}
	return nil
}

func randomSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("ca: random serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// validLabel reports whether s is an RFC 1123 DNS label: lowercase letters,
// digits and '-', 1 to 63 characters, starting and ending with an
// alphanumeric.
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validDNSName reports whether s can go into a DNS SAN: dot-separated labels
// of letters, digits and '-', optionally behind a leading "*." wildcard.
func validDNSName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.ToLower(s), ".") {
		if !validLabel(label) {
			return false
		}
	}
	return true
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
