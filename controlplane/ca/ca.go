// Package ca is the mesh's certificate authority: the root it keeps in etcd,
// the X.509 SVIDs it signs for workloads, and the control plane's own serving
// certificate.
//
// The root is created on the first start against an empty store, inside an
// etcd transaction, so replicas that start together agree on one root; every
// replica then signs with the same key and nothing about the CA lives outside
// etcd.
package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/controlplane/store"
)

// DefaultTrustDomain is the trust domain of a mesh whose operator chose none.
const DefaultTrustDomain = "weft.local"

// The control plane's own identity, carried by its serving certificate.
const (
	ControlPlaneNamespace = spiffe.ControlPlaneNamespace
	ControlPlaneService   = spiffe.ControlPlaneService
)

// rootExpiryWarning is how close to its expiry the root must be before Load
// warns about it on every start.
const rootExpiryWarning = 90 * 24 * time.Hour

// Options configure Load.
type Options struct {
	// TrustDomain is the mesh's SPIFFE trust domain; DefaultTrustDomain when
	// empty. The first start against an empty store fixes it for good.
	TrustDomain string
	// Log receives the CA's lifecycle messages; slog.Default() when nil.
	Log *slog.Logger
}

// CA signs SVIDs with the mesh root kept in the store. It is safe for
// concurrent use.
type CA struct {
	trustDomain string
	log         *slog.Logger
	// current is replaced as a whole, never modified: signing reads it without
	// a lock, and a future root rotation swaps in an authority whose bundle
	// holds both the old and the new root.
	current atomic.Pointer[authority]
}

// authority is what signs and what is trusted at one moment.
type authority struct {
	cert *x509.Certificate // signs SVIDs
	key  crypto.Signer
	// intermediates are sent after the leaf: the certificates between cert and
	// a root, DER. Empty while cert is the root itself.
	intermediates [][]byte
	bundle        []*x509.Certificate // every root workloads should trust
	bundlePEM     []byte
}

func newAuthority(cert *x509.Certificate, key crypto.Signer, roots []*x509.Certificate) *authority {
	var buf bytes.Buffer
	for _, r := range roots {
		// Encoding to a bytes.Buffer cannot fail.
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})
	}
	return &authority{cert: cert, key: key, bundle: roots, bundlePEM: buf.Bytes()}
}

// Load opens the CA kept in the store, creating the trust domain record and
// the root on the first start. Replicas may call Load at the same time: they
// all end up with the same root.
func Load(ctx context.Context, kv *clientv3.Client, opts Options) (*CA, error) {
	td := opts.TrustDomain
	if td == "" {
		td = DefaultTrustDomain
	}
	if err := validateTrustDomain(td); err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "ca", "trust_domain", td)

	if err := claimTrustDomain(ctx, kv, td); err != nil {
		return nil, err
	}
	now := time.Now()
	root, created, err := loadOrCreateRoot(ctx, kv, td, now)
	if err != nil {
		return nil, err
	}
	if err := checkRoot(root.cert, td, now); err != nil {
		return nil, err
	}

	c := &CA{trustDomain: td, log: log}
	c.current.Store(newAuthority(root.cert, root.key, []*x509.Certificate{root.cert}))

	attrs := []any{
		"root_sha256", fingerprint(root.cert),
		"root_not_after", root.cert.NotAfter.UTC().Format(time.RFC3339),
	}
	if created {
		log.Info("created mesh root CA", attrs...)
	} else {
		log.Info("loaded mesh root CA", attrs...)
	}
	if left := root.cert.NotAfter.Sub(now); left < rootExpiryWarning {
		log.Warn("mesh root CA expires soon; workloads will lose their identity when it does",
			append(attrs, "expires_in", left.Round(time.Hour).String())...)
	}
	return c, nil
}

// claimTrustDomain records td as the store's trust domain, or checks that it
// is the one already recorded.
func claimTrustDomain(ctx context.Context, kv *clientv3.Client, td string) error {
	stored, _, err := store.PutIfAbsent(ctx, kv, keyTrustDomain, []byte(td))
	if err != nil {
		return fmt.Errorf("ca: record trust domain: %w", err)
	}
	if string(stored) != td {
		return fmt.Errorf("ca: this store was initialised with trust domain %q; --trust-domain %q cannot change it",
			stored, td)
	}
	return nil
}

// checkRoot refuses a root that cannot serve this mesh.
func checkRoot(root *x509.Certificate, td string, now time.Time) error {
	if !root.IsCA || !root.BasicConstraintsValid {
		return errors.New("ca: the root in the store is not a CA certificate")
	}
	id, err := trustDomainOf(root)
	if err != nil {
		return fmt.Errorf("ca: the root in the store: %w", err)
	}
	if id != td {
		return fmt.Errorf("ca: the root in the store belongs to trust domain %q, not %q", id, td)
	}
	if !now.Before(root.NotAfter) {
		return fmt.Errorf("ca: the mesh root expired at %s; replace it before starting the control plane",
			root.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// trustDomainOf returns the trust domain named by a root's spiffe://<td> URI SAN.
func trustDomainOf(root *x509.Certificate) (string, error) {
	for _, u := range root.URIs {
		if u.Scheme == "spiffe" {
			if u.Path != "" && u.Path != "/" {
				return "", fmt.Errorf("URI SAN %q names a workload, not a trust domain", u)
			}
			return u.Host, nil
		}
	}
	return "", errors.New("no spiffe:// URI SAN")
}

// TrustDomain returns the mesh's SPIFFE trust domain.
func (c *CA) TrustDomain() string { return c.trustDomain }

// ControlPlaneID returns the SPIFFE ID in the control plane's serving certificate.
func (c *CA) ControlPlaneID() spiffe.ID {
	return spiffe.ID{TrustDomain: c.trustDomain, Namespace: ControlPlaneNamespace, Service: ControlPlaneService}
}

// TrustBundle returns every root the mesh trusts, DER. The caller may keep
// and modify the result.
func (c *CA) TrustBundle() [][]byte {
	a := c.current.Load()
	out := make([][]byte, len(a.bundle))
	for i, r := range a.bundle {
		out[i] = bytes.Clone(r.Raw)
	}
	return out
}

// TrustBundlePEM returns every root the mesh trusts, PEM.
func (c *CA) TrustBundlePEM() []byte {
	return bytes.Clone(c.current.Load().bundlePEM)
}

// TrustBundlePool returns a new pool holding every root the mesh trusts, as
// tls.Config.ClientCAs and RootCAs want it.
func (c *CA) TrustBundlePool() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, r := range c.current.Load().bundle {
		pool.AddCert(r)
	}
	return pool
}

// fingerprint is the SHA-256 of a certificate, as `openssl x509 -fingerprint
// -sha256` shows it without the colons.
func fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}
