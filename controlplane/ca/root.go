package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/controlplane/store"
)

// Keys in the store.
const (
	keyTrustDomain = store.PrefixCA + "trust-domain"
	keyRoot        = store.PrefixCA + "root"
)

const (
	rootCommonName = "Weft Mesh Root CA"
	rootYears      = 10
	// rootBackdate keeps a new root valid for peers whose clocks lag behind.
	rootBackdate = time.Hour
)

// root is a CA certificate and its private key.
type root struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// rootRecord is the root as stored at keyRoot.
type rootRecord struct {
	CertPEM string `json:"cert"`
	KeyPEM  string `json:"key"` // PKCS #8
}

// loadOrCreateRoot returns the root in the store, creating it when there is
// none. When replicas race to create it, one transaction wins and the others
// read the winner's root; created reports whether this call won.
func loadOrCreateRoot(ctx context.Context, kv *clientv3.Client, td string, now time.Time) (r *root, created bool, err error) {
	resp, err := kv.Get(ctx, keyRoot)
	if err != nil {
		return nil, false, fmt.Errorf("ca: read root: %w", err)
	}
	if len(resp.Kvs) > 0 {
		r, err := decodeRoot(resp.Kvs[0].Value)
		return r, false, err
	}

	fresh, err := newRoot(td, now, rootCommonName)
	if err != nil {
		return nil, false, err
	}
	data, err := encodeRoot(fresh)
	if err != nil {
		return nil, false, err
	}
	stored, created, err := store.PutIfAbsent(ctx, kv, keyRoot, data)
	if err != nil {
		return nil, false, fmt.Errorf("ca: store root: %w", err)
	}
	if created {
		return fresh, true, nil
	}
	r, err = decodeRoot(stored)
	return r, false, err
}

// newRoot makes a self-signed ECDSA P-256 root for trust domain td, named cn.
func newRoot(td string, now time.Time, cn string) (*root, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-rootBackdate),
		NotAfter:              now.AddDate(rootYears, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: td}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("ca: create root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse new root certificate: %w", err)
	}
	return &root{cert: cert, key: key}, nil
}

func encodeRoot(r *root) ([]byte, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(r.key)
	if err != nil {
		return nil, fmt.Errorf("ca: encode root key: %w", err)
	}
	data, err := json.Marshal(rootRecord{
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.cert.Raw})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
	})
	if err != nil {
		return nil, fmt.Errorf("ca: encode root: %w", err)
	}
	return data, nil
}

// decodeRoot reads a stored root and checks that its key belongs to its
// certificate.
func decodeRoot(data []byte) (*root, error) {
	var rec rootRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("ca: decode root at %s: %w", keyRoot, err)
	}
	certBlock, _ := pem.Decode([]byte(rec.CertPEM))
	if certBlock == nil || certBlock.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("ca: root at %s: cert is not a PEM CERTIFICATE", keyRoot)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca: root at %s: %w", keyRoot, err)
	}
	keyBlock, _ := pem.Decode([]byte(rec.KeyPEM))
	if keyBlock == nil || keyBlock.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("ca: root at %s: key is not a PEM PKCS #8 PRIVATE KEY", keyRoot)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca: root at %s: key: %w", keyRoot, err)
	}
	key, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("ca: root at %s: key of type %T cannot sign", keyRoot, parsed)
	}
	type publicKey interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(publicKey); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("ca: root at %s: key does not belong to the certificate", keyRoot)
	}
	return &root{cert: cert, key: key}, nil
}

// validateTrustDomain applies the SPIFFE rules for trust domain names:
// lowercase letters, digits, dots, dashes and underscores.
func validateTrustDomain(td string) error {
	if td == "" {
		return errEmptyTrustDomain
	}
	if len(td) > 255 {
		return fmt.Errorf("ca: trust domain %.20q... is longer than 255 characters", td)
	}
	for i := 0; i < len(td); i++ {
		c := td[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("ca: trust domain %q: only lowercase letters, digits, '.', '-' and '_' are allowed", td)
		}
	}
	if td[0] == '.' || td[len(td)-1] == '.' {
		return fmt.Errorf("ca: trust domain %q must not start or end with '.'", td)
	}
	return nil
}

var errEmptyTrustDomain = errors.New("ca: trust domain is empty")
