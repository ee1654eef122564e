package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/proxy/identity"
)

// selfSigned is an SVID-shaped certificate of key, its own bundle.
func selfSigned(t *testing.T, key *ecdsa.PrivateKey, serial int64) *identity.SVID {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &identity.SVID{Certificate: &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Leaf: leaf, Bundle: []*x509.Certificate{leaf}}
}

// TestSVIDFiles: the files form a key pair grpc can load, the key is
// private, and a rotation replaces the certificate beside the same key.
func TestSVIDFiles(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &svidFiles{dir: dir}
	for serial := int64(1); serial <= 2; serial++ {
		if err := f.write(selfSigned(t, key, serial)); err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
		if err != nil {
			t.Fatalf("write %d: %v", serial, err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if leaf.SerialNumber.Int64() != serial {
			t.Errorf("write %d: cert.pem holds serial %d", serial, leaf.SerialNumber.Int64())
		}
		bundle, err := os.ReadFile(filepath.Join(dir, BundleFile))
		if err != nil || !x509.NewCertPool().AppendCertsFromPEM(bundle) {
			t.Errorf("write %d: bundle.pem unreadable: %v", serial, err)
		}
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key.pem mode %v, want 0600", st.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v; want the three files and no leftovers", names)
	}
}

func TestOptionsValidate(t *testing.T) {
	o := Options{Service: "s", Namespace: "default", Control: "127.0.0.1:15010", CAFile: "ca", TokenFile: "t", OutDir: "d"}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	o.Serve = "no-port"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--serve") {
		t.Errorf("bad --serve: %v", err)
	}
	if err := (&Options{}).Validate(); err == nil || !strings.Contains(err.Error(), "--service, --namespace, --control, --ca-file, --token-file, --out") {
		t.Errorf("empty options: %v", err)
	}
}
