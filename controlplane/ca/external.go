package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// External is an operator's CA that signs SVIDs in place of the mesh root:
// an intermediate whose chain leads to the operator's root, which is what
// proxies trust.
type External struct {
	// Cert signs SVIDs, with Key.
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain holds the certificates between Cert and a root, DER, sent after
	// Cert in every SVID chain.
	Chain [][]byte
	// Roots is the trust bundle, the root Cert chains to first.
	Roots []*x509.Certificate
}

// ExternalFiles name the files of an external CA.
type ExternalFiles struct {
	// Cert holds the signing CA certificate, PEM, optionally followed by
	// the rest of its chain (and its root).
	Cert string
	// Key holds its private key: PEM PKCS #8, SEC 1 (EC) or PKCS #1 (RSA).
	Key string
	// Bundle, optional, holds the roots proxies trust, PEM. Without it the
	// root must end the Cert file.
	Bundle string
}

// LoadExternal reads and checks an external CA: the key must belong to the
// certificate, which must be a CA, valid now, and chain to a root of the
// bundle. Every error names the flag (--ca-cert, --ca-key, --ca-bundle) to fix.
func LoadExternal(files ExternalFiles, now time.Time) (*External, error) {
	certs, err := readCertFile(files.Cert, "--ca-cert")
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(files.Key)
	if err != nil {
		return nil, fmt.Errorf("ca: --ca-key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: --ca-key %s: %w", files.Key, err)
	}
	var bundle []*x509.Certificate
	if files.Bundle != "" {
		if bundle, err = readCertFile(files.Bundle, "--ca-bundle"); err != nil {
			return nil, err
		}
	}
	ext, err := NewExternal(certs, key, bundle, now)
	if err != nil {
		return nil, err
	}
	return ext, nil
}

// NewExternal checks an external CA made of certs (the signing certificate
// first, then optionally its chain), its key, and the roots to trust (when
// empty, the self-signed certificates at the end of certs).
func NewExternal(certs []*x509.Certificate, key crypto.Signer, roots []*x509.Certificate, now time.Time) (*External, error) {
	if len(certs) == 0 {
		return nil, errors.New("ca: --ca-cert holds no certificate")
	}
	cert := certs[0]
	name := fmt.Sprintf("--ca-cert %q", cert.Subject.String())
	if err := matchKey(cert, key); err != nil {
		return nil, fmt.Errorf("ca: --ca-key does not belong to %s: %w", name, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("ca: %s is not a CA certificate (it lacks basicConstraints CA:TRUE), so it cannot sign SVIDs; give an intermediate CA", name)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("ca: %s may not sign certificates (its key usage lacks keyCertSign)", name)
	}
	if now.Before(cert.NotBefore) {
		return nil, fmt.Errorf("ca: %s is not valid until %s", name, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if !now.Before(cert.NotAfter) {
		return nil, fmt.Errorf("ca: %s expired at %s", name, cert.NotAfter.UTC().Format(time.RFC3339))
	}

	var chain []*x509.Certificate
	for _, c := range certs[1:] {
		if isSelfSigned(c) {
			if !containsCert(roots, c) {
				roots = append(roots, c)
			}
			continue
		}
		chain = append(chain, c)
	}
	if isSelfSigned(cert) && !containsCert(roots, cert) {
		roots = append(roots, cert)
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("ca: %s does not include its root: give the root proxies should trust with --ca-bundle", name)
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, c := range chain {
		inter.AddCert(c)
	}
	verified, err := cert.Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("ca: %s does not chain to the roots in --ca-bundle (or at the end of --ca-cert): %w", name, err)
	}
	// The root it chains to goes first: proxies take bundle[0] as the root
	// their SVIDs must chain to.
	anchor := verified[0][len(verified[0])-1]
	ordered := []*x509.Certificate{anchor}
	for _, r := range roots {
		if !r.Equal(anchor) {
			ordered = append(ordered, r)
		}
	}
	ext := &External{Cert: cert, Key: key, Roots: ordered}
	for _, c := range verified[0][1 : len(verified[0])-1] {
		ext.Chain = append(ext.Chain, c.Raw)
	}
	return ext, nil
}

// authority is what signs with e: the chain after each leaf is e's
// certificate (unless it is the root itself) and its own chain.
func (e *External) authority() *authority {
	a := newAuthority(e.Cert, e.Key, e.Roots)
	if !isSelfSigned(e.Cert) {
		a.intermediates = append([][]byte{e.Cert.Raw}, e.Chain...)
	}
	return a
}

func readCertFile(path, flag string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", flag, err)
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("ca: %s %s: PEM block %q where only CERTIFICATE blocks belong (is the key in the wrong file?)", flag, path, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca: %s %s: certificate %d: %w", flag, path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("ca: %s %s holds no PEM certificate", flag, path)
	}
	return certs, nil
}

// parseKey reads the first private key in PEM data.
func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var (
		parsed any
		err    error
	)
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "CERTIFICATE":
		return nil, errors.New("holds a CERTIFICATE, not a private key (are --ca-cert and --ca-key swapped?)")
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("the key is encrypted; give it decrypted, with permissions 0600")
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key (want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := parsed.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return k.(crypto.Signer), nil
	}
	return nil, fmt.Errorf("a %T cannot sign certificates: the key must be ECDSA, RSA or Ed25519", parsed)
}

// matchKey checks that key is the private half of cert's public key.
func matchKey(cert *x509.Certificate, key crypto.Signer) error {
	type publicKey interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(publicKey)
	if ok && pub.Equal(cert.PublicKey) {
		return nil
	}
	if keyAlg, certAlg := algorithmOf(key.Public()), cert.PublicKeyAlgorithm.String(); keyAlg != certAlg {
		return fmt.Errorf("the key is %s but the certificate's public key is %s", keyAlg, certAlg)
	}
	return errors.New("the key is of the right type but is another key")
}

func algorithmOf(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return x509.ECDSA.String()
	case *rsa.PublicKey:
		return x509.RSA.String()
	case ed25519.PublicKey:
		return x509.Ed25519.String()
	}
	return fmt.Sprintf("%T", pub)
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}
