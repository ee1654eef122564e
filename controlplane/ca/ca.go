// Package ca is the mesh's certificate authority: the root it keeps in etcd,
// the X.509 SVIDs it signs for workloads, and the control plane's own serving
// certificate.
//
// The root is created on the first start against an empty store, inside an
// etcd transaction, so replicas that start together agree on one root; every
// replica then signs with the same key and nothing about the CA lives outside
// etcd. A root rotation (rotation.go) is a record in etcd that every replica
// follows, one transaction per phase. An external CA (external.go) signs
// with an operator's intermediate instead, and keeps nothing in etcd.
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
	"sync"
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

// Options configure Load.
type Options struct {
	// TrustDomain is the mesh's SPIFFE trust domain; DefaultTrustDomain when
	// empty. The first start against an empty store fixes it for good.
	TrustDomain string
	// Log receives the CA's lifecycle messages; slog.Default() when nil.
	Log *slog.Logger
	// External, when set, signs with an operator's CA instead of the mesh
	// root kept in the store; root rotation is then the operator's business.
	External *External
	// OnChange is called, from the goroutine running Run, after the signing
	// certificate or the trust bundle changed (a rotation's phases).
	OnChange func()
}

// CA signs SVIDs with the mesh root kept in the store. It is safe for
// concurrent use.
type CA struct {
	trustDomain string
	log         *slog.Logger
	kv          *clientv3.Client
	external    *External
	onChange    func()
	// current is replaced as a whole, never modified: signing reads it without
	// a lock, and a root rotation swaps in an authority whose bundle holds
	// both the old and the new root.
	current atomic.Pointer[authority]
	// state is the store's CA records the current authority was built from;
	// nil with an external CA. installMu orders installs (rotation.go).
	state     atomic.Pointer[caState]
	installMu sync.Mutex
	// generation counts the authorities installed, for holders of issued
	// certificates that must follow a change (the serving certificate).
	generation atomic.Uint64
}

// authority is what signs and what is trusted at one moment.
type authority struct {
	cert *x509.Certificate // signs SVIDs
	key  crypto.Signer
	// intermediates are sent after the leaf: the certificates between the
	// leaf and a root, DER (cert itself when it is not a root, and the
	// cross-signed new root during a rotation). Empty while cert is the root.
	intermediates [][]byte
	// servingExtra follows intermediates in the control plane's own chain
	// only: after a rotation, the cross-signed new root, so proxies whose
	// --ca-file still holds only the retired root can reach the control plane.
	servingExtra [][]byte
	// bundle is every root workloads should trust, the one that signs now
	// first: a proxy whose SVID does not chain to bundle[0] re-issues it.
	bundle    []*x509.Certificate
	bundlePEM []byte
	// pool holds bundle, for TrustBundlePool.
	pool *x509.CertPool
}

func newAuthority(cert *x509.Certificate, key crypto.Signer, roots []*x509.Certificate) *authority {
	var buf bytes.Buffer
	for _, r := range roots {
		// Encoding to a bytes.Buffer cannot fail.
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	return &authority{cert: cert, key: key, bundle: roots, bundlePEM: buf.Bytes(), pool: pool}
}

// sameAs reports whether a and b sign with the same certificate, send the
// same chains and trust the same roots in the same order.
func (a *authority) sameAs(b *authority) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(a.cert.Raw, b.cert.Raw) && bytes.Equal(a.bundlePEM, b.bundlePEM) &&
		equalDER(a.intermediates, b.intermediates) && equalDER(a.servingExtra, b.servingExtra)
}

func equalDER(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Load opens the CA kept in the store, creating the trust domain record and
// the root on the first start. Replicas may call Load at the same time: they
// all end up with the same root. With opts.External it signs with the
// operator's CA instead, and keeps only the trust domain in the store. Run
// keeps the CA in step with root rotations.
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
	c := &CA{trustDomain: td, log: log, kv: kv, external: opts.External, onChange: opts.OnChange}
	now := time.Now()
	if ext := opts.External; ext != nil {
		c.current.Store(ext.authority())
		log.Info("signing SVIDs with an external CA",
			"ca_subject", ext.Cert.Subject.String(), "ca_sha256", fingerprint(ext.Cert),
			"ca_not_after", ext.Cert.NotAfter.UTC().Format(time.RFC3339), "roots", len(ext.Roots))
		c.warnExpiry(now)
		return c, nil
	}

	root, created, err := loadOrCreateRoot(ctx, kv, td, now)
	if err != nil {
		return nil, err
	}
	if err := checkRoot(root.cert, td, now); err != nil {
		return nil, err
	}
	// Read the root again with the rotation record, at one revision.
	st, err := readState(ctx, kv)
	if err != nil {
		return nil, err
	}
	c.state.Store(st)
	c.current.Store(st.authority())

	attrs := []any{
		"root_sha256", fingerprint(st.root.cert),
		"root_not_after", st.root.cert.NotAfter.UTC().Format(time.RFC3339),
	}
	if st.rot != nil && st.rot.inProgress() {
		attrs = append(attrs, "rotation", st.rot.rec.ID, "rotation_phase", st.rot.rec.Phase)
	}
	if created {
		log.Info("created mesh root CA", attrs...)
	} else {
		log.Info("loaded mesh root CA", attrs...)
	}
	c.warnExpiry(now)
	return c, nil
}

// warnExpiry logs, at every start, each certificate of the CA that is near
// its end (see expiryWarning).
func (c *CA) warnExpiry(now time.Time) {
	for _, w := range c.certWarnings(now) {
		c.log.Warn(w)
	}
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

// Generation changes every time what signs or what is trusted changes.
func (c *CA) Generation() uint64 { return c.generation.Load() }

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

// TrustBundlePool returns the pool of every root the mesh trusts, as
// tls.Config.ClientCAs and RootCAs want it. It is the same pool until the
// bundle changes, so a caller can tell a new bundle by the pointer; callers
// must not add to it.
func (c *CA) TrustBundlePool() *x509.CertPool {
	return c.current.Load().pool
}

// fingerprint is the SHA-256 of a certificate, as `openssl x509 -fingerprint
// -sha256` shows it without the colons.
func fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}
