package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// peerServerName is the name the client-side peers verify the server-side
// peer's certificate against (and send as SNI).
const peerServerName = "echo.bench.test"

// pki is the throwaway CA and certificates the peer proxies (HAProxy,
// nginx, Caddy) use for mutual TLS between the two sides of a pair. Weft
// uses its own mesh CA instead. ECDSA P-256, as Weft's SVIDs.
type pki struct {
	CA                    string // CA certificate (PEM)
	ServerCert, ServerKey string
	ServerBundle          string // certificate then key, as HAProxy's crt wants
	ClientCert, ClientKey string
	ClientBundle          string
}

// newPKI writes a fresh CA, a server certificate for peerServerName and a
// client certificate into dir.
func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	p := &pki{
		CA:         filepath.Join(dir, "ca.crt"),
		ServerCert: filepath.Join(dir, "server.crt"), ServerKey: filepath.Join(dir, "server.key"),
		ServerBundle: filepath.Join(dir, "server.pem"),
		ClientCert:   filepath.Join(dir, "client.crt"), ClientKey: filepath.Join(dir, "client.key"),
		ClientBundle: filepath.Join(dir, "client.pem"),
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	now := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bench throwaway CA"},
		NotBefore:             now,
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writePEM(p.CA, 0o644, pemBlock("CERTIFICATE", caDER)); err != nil {
		return nil, err
	}
	leaves := []struct {
		cn               string
		usage            x509.ExtKeyUsage
		cert, key, chain string
		serial           int64
	}{
		{peerServerName, x509.ExtKeyUsageServerAuth, p.ServerCert, p.ServerKey, p.ServerBundle, 2},
		{"bench-client", x509.ExtKeyUsageClientAuth, p.ClientCert, p.ClientKey, p.ClientBundle, 3},
	}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("pki: %s key: %w", l.cn, err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(l.serial),
			Subject:      pkix.Name{CommonName: l.cn},
			DNSNames:     []string{l.cn},
			NotBefore:    now,
			NotAfter:     now.Add(48 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{l.usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, fmt.Errorf("pki: %s certificate: %w", l.cn, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("pki: %s key: %w", l.cn, err)
		}
		certPEM, keyPEM := pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER)
		for _, w := range []struct {
			path   string
			mode   os.FileMode
			blocks [][]byte
		}{
			{l.cert, 0o644, [][]byte{certPEM}},
			{l.key, 0o600, [][]byte{keyPEM}},
			{l.chain, 0o600, [][]byte{certPEM, keyPEM}},
		} {
			if err := writePEM(w.path, w.mode, w.blocks...); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writePEM(path string, mode os.FileMode, blocks ...[]byte) error {
	var all []byte
	for _, b := range blocks {
		all = append(all, b...)
	}
	if err := os.WriteFile(path, all, mode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}
