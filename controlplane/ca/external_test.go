package ca_test

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/store/storetest"
)

// makeCA makes a CA certificate signed by parent (self-signed when nil).
func makeCA(t *testing.T, parent *x509.Certificate, parentKey crypto.Signer, cn string, notBefore, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func writePEM(t *testing.T, name string, blocks ...*pem.Block) string {
	t.Helper()
	var data []byte
	for _, b := range blocks {
		data = append(data, pem.EncodeToMemory(b)...)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func certBlock(c *x509.Certificate) *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw} }

func keyBlock(t *testing.T, key any) *pem.Block {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
}

// TestExternalCASignsChainsToUserRoot: SVIDs are signed by the operator's
// intermediate, carry it, and verify to the operator's root alone.
func TestExternalCASignsChainsToUserRoot(t *testing.T) {
	now := time.Now()
	root, rootKey := makeCA(t, nil, nil, "Corp Root", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	inter, interKey := makeCA(t, root, rootKey, "Corp Mesh Intermediate", now.Add(-time.Hour), now.Add(90*24*time.Hour))
	ecKey, err := x509.MarshalECPrivateKey(interKey)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := ca.LoadExternal(ca.ExternalFiles{
		Cert:   writePEM(t, "ca.crt", certBlock(inter)),
		Key:    writePEM(t, "ca.key", &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecKey}),
		Bundle: writePEM(t, "root.crt", certBlock(root)),
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	kv := storetest.New(t).Client()
	c, err := ca.Load(context.Background(), kv, ca.Options{Log: quiet, External: ext})
	if err != nil {
		t.Fatal(err)
	}
	if bundle := bundleOf(t, c); len(bundle) != 1 || !bundle[0].Equal(root) {
		t.Fatalf("trust bundle holds %d certificates, want the corp root", len(bundle))
	}
	chain, err := c.SignCSR(csrFor(t), spiffe.ID{TrustDomain: "weft.local", Namespace: "default", Service: "web"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 {
		t.Fatalf("SVID chain has %d certificates, want leaf + intermediate", len(chain))
	}
	if err := verifies(chain, root); err != nil {
		t.Fatalf("SVID does not verify to the corp root: %v", err)
	}
	if err := c.StartRotation(context.Background(), ca.RotationOptions{}); !errors.Is(err, ca.ErrExternal) {
		t.Fatalf("StartRotation with an external CA: err = %v, want ErrExternal", err)
	}
	// The root may also end the --ca-cert file instead of --ca-bundle.
	if _, err := ca.LoadExternal(ca.ExternalFiles{
		Cert: writePEM(t, "chain.crt", certBlock(inter), certBlock(root)),
		Key:  writePEM(t, "ca.key", keyBlock(t, interKey)),
	}, now); err != nil {
		t.Fatalf("cert file ending with its root: %v", err)
	}
}

func TestExternalCARefusals(t *testing.T) {
	now := time.Now()
	root, rootKey := makeCA(t, nil, nil, "Corp Root", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	inter, interKey := makeCA(t, root, rootKey, "Corp Mesh Intermediate", now.Add(-time.Hour), now.Add(90*24*time.Hour))
	expired, expiredKey := makeCA(t, root, rootKey, "Old Intermediate", now.Add(-48*time.Hour), now.Add(-time.Hour))
	otherRoot, _ := makeCA(t, nil, nil, "Other Root", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	_, otherKey := makeCA(t, nil, nil, "Unrelated", now.Add(-time.Hour), now.Add(time.Hour))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A leaf (not a CA) certificate.
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "not-a-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, inter, &otherKey.PublicKey, interKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)

	rootFile := writePEM(t, "root.crt", certBlock(root))
	for _, tc := range []struct {
		name              string
		cert, key, bundle string
		want              []string
	}{
		{"key of another certificate", writePEM(t, "c", certBlock(inter)), writePEM(t, "k", keyBlock(t, otherKey)), rootFile,
			[]string{"--ca-key does not belong to", "another key"}},
		{"RSA key for an ECDSA certificate", writePEM(t, "c", certBlock(inter)), writePEM(t, "k", keyBlock(t, rsaKey)), rootFile,
			[]string{"--ca-key does not belong to", "the key is RSA but the certificate's public key is ECDSA"}},
		{"key that cannot sign", writePEM(t, "c", certBlock(inter)), writePEM(t, "k", keyBlock(t, x25519)), rootFile,
			[]string{"--ca-key", "cannot sign certificates", "ECDSA, RSA or Ed25519"}},
		{"certificate and key swapped", writePEM(t, "c", certBlock(inter)), writePEM(t, "k", certBlock(inter)), rootFile,
			[]string{"--ca-key", "swapped"}},
		{"not a CA", writePEM(t, "c", certBlock(leaf)), writePEM(t, "k", keyBlock(t, otherKey)), rootFile,
			[]string{"not-a-ca", "is not a CA certificate"}},
		{"expired", writePEM(t, "c", certBlock(expired)), writePEM(t, "k", keyBlock(t, expiredKey)), rootFile,
			[]string{"Old Intermediate", "expired at"}},
		{"no root", writePEM(t, "c", certBlock(inter)), writePEM(t, "k", keyBlock(t, interKey)), "",
			[]string{"does not include its root", "--ca-bundle"}},
		{"another root", writePEM(t, "c", certBlock(inter)), writePEM(t, "k", keyBlock(t, interKey)), writePEM(t, "r", certBlock(otherRoot)),
			[]string{"does not chain to the roots in --ca-bundle"}},
		{"key in the cert file", writePEM(t, "c", keyBlock(t, interKey)), writePEM(t, "k", keyBlock(t, interKey)), rootFile,
			[]string{"--ca-cert", "only CERTIFICATE blocks belong"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.LoadExternal(ca.ExternalFiles{Cert: tc.cert, Key: tc.key, Bundle: tc.bundle}, now)
			if err == nil || !contains(err.Error(), tc.want...) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}
