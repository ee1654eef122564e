// Package identity holds the proxy's private key and its current SVID, and
// keeps the SVID fresh. The key is made here and never leaves the process: the
// control plane only ever sees a certificate signing request. During a root
// rotation the trust bundle names the root that signs now first; an SVID that
// does not chain to it is re-issued at once rather than at half-life.
package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/spiffe"
)

// Dialer opens a fresh connection to the control plane. Each signing request
// uses its own connection so that its TLS handshake presents the newest SVID
// (a long-lived connection would still present the one it was opened with).
type Dialer func(ctx context.Context) (*grpc.ClientConn, error)

// Options configure a Source.
type Options struct {
	Service, Namespace string
	// WorkloadID names this proxy's workload to the control plane when it
	// asks for an SVID, so the control plane can tell which proxies still
	// hold an SVID of an old root during a root rotation. Optional.
	WorkloadID string
	// Token returns the join token, read afresh each time it is needed
	// (it is only needed to join, or to rejoin after the SVID expired).
	Token func() (string, error)
	Dial  Dialer
	Log   *slog.Logger
	// OnRotate, if set, is called after every new SVID is installed.
	OnRotate func(*SVID)
}

// SVID is an issued identity document with the key it certifies.
type SVID struct {
	ID          spiffe.ID
	Certificate *tls.Certificate
	Leaf        *x509.Certificate
	// Bundle holds the roots the mesh trusts, as returned with the SVID.
	Bundle []*x509.Certificate
	// Received is when the proxy installed it.
	Received time.Time
}

// workloadHeader carries Options.WorkloadID; the control plane's identity
// service reads it under the same name.
const workloadHeader = "x-weft-workload"

// Source is the proxy's identity. Its zero value is not usable; call New.
type Source struct {
	opts Options
	key  *ecdsa.PrivateKey
	cur  atomic.Pointer[SVID]
	// signingRoot is the first root of the latest trust bundle, the one the
	// control plane signs with now (see TrustBundleChanged).
	signingRoot atomic.Pointer[x509.Certificate]
	// bundle is the latest trust bundle; orphaned is set while the current
	// SVID chains to none of its roots (its root was retired), when the SVID
	// is worth no more than an expired one.
	bundle   atomic.Pointer[[]*x509.Certificate]
	orphaned atomic.Bool
	// reissue wakes Run when the SVID no longer chains to signingRoot.
	reissue chan struct{}
}

// New makes the proxy's ECDSA P-256 key.
func New(opts Options) (*Source, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Source{opts: opts, key: key, reissue: make(chan struct{}, 1)}, nil
}

// Certificate returns the current SVID, or nil before the proxy has joined
// and once the SVID has expired. An expired certificate proves nothing, and
// presenting one would fail the very handshake that rejoins with the token:
// the control plane verifies any client certificate it is shown.
//
// Nor is an SVID whose root has been retired from the trust bundle
// presented: no peer and no control plane accepts it any more.
func (s *Source) Certificate() *tls.Certificate {
	if v := s.cur.Load(); v != nil && !time.Now().After(v.Leaf.NotAfter) && !s.orphaned.Load() {
		return v.Certificate
	}
	return nil
}

// Current returns the current SVID, or nil.
func (s *Source) Current() *SVID { return s.cur.Load() }

// Join gets the first SVID, authenticating with the join token.
func (s *Source) Join(ctx context.Context) error {
	return s.sign(ctx, true)
}

// Run rotates the SVID at about half its lifetime (jittered, so a fleet
// started together does not rotate together) until ctx is done, and soon
// after a trust bundle whose signing root the SVID does not chain to
// arrives (a root rotation). A failed rotation is retried with backoff; once
// the SVID has expired the join token is used again.
func (s *Source) Run(ctx context.Context) error {
	backoff := time.Second
	// stale counts re-issues in a row that still did not chain to the
	// signing root (a replica that has not switched yet answered).
	stale := 0
	for {
		cur := s.cur.Load()
		if cur == nil {
			return errors.New("identity: Run called before Join")
		}
		wait := time.Until(RotateAt(cur.Received, cur.Leaf.NotAfter, mathrand.Float64()))
		soon := !s.chainsToSigningRoot(cur)
		if soon {
			// Spread a fleet's re-issues over ReissueSpread; back off while
			// the answers still come from the old root.
			spread := ReissueSpread << min(stale, 4)
			wait = min(wait, time.Duration(mathrand.Int64N(int64(spread))))
		}
		t := time.NewTimer(wait)
		woken := false
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-s.reissue:
				// Already due soon: keep the point picked in the spread.
				if !soon {
					t.Stop()
					woken, waiting = true, false
				}
			case <-t.C:
				waiting = false
			}
		}
		if woken {
			continue
		}
		rootChange := !s.chainsToSigningRoot(cur)
		for {
			// An SVID whose root was retired cannot authenticate: start over
			// with the join token, as once it has expired.
			expired := time.Now().After(cur.Leaf.NotAfter) || s.orphaned.Load()
			err := s.sign(ctx, expired)
			if err == nil {
				backoff = time.Second
				break
			}
			s.opts.Log.Warn("SVID rotation failed; retrying", "err", err, "in", backoff, "expires", cur.Leaf.NotAfter)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
		}
		switch {
		case !rootChange:
			stale = 0
		case s.chainsToSigningRoot(s.cur.Load()):
			stale = 0
			s.opts.Log.Info("SVID re-issued by the new signing root")
		default:
			stale++
		}
	}
}

// ReissueSpread is the window over which proxies re-issue their SVIDs after
// the signing root changed, each at a random point of it.
const ReissueSpread = 3 * time.Second

// TrustBundleChanged tells the Source the roots of the latest trust bundle
// (SDS ROOTCA), the one the control plane signs with now first. When the
// SVID does not chain to that root, Run re-issues it within ReissueSpread.
func (s *Source) TrustBundleChanged(roots []*x509.Certificate) {
	if len(roots) == 0 {
		return
	}
	roots = slices.Clone(roots)
	s.bundle.Store(&roots)
	s.checkOrphaned(s.cur.Load())
	if prev := s.signingRoot.Swap(roots[0]); prev != nil && prev.Equal(roots[0]) && !s.orphaned.Load() {
		return
	}
	if cur := s.cur.Load(); cur != nil && !s.chainsToSigningRoot(cur) {
		s.opts.Log.Info("the trust bundle names a new signing root; re-issuing the SVID",
			"root", roots[0].Subject.CommonName)
		select {
		case s.reissue <- struct{}{}:
		default:
		}
	}
}

// checkOrphaned sets orphaned when svid chains to no root of the latest
// trust bundle.
func (s *Source) checkOrphaned(svid *SVID) {
	bundle := s.bundle.Load()
	if svid == nil || bundle == nil {
		s.orphaned.Store(false)
		return
	}
	orphaned := !slices.ContainsFunc(*bundle, svid.ChainsTo)
	if orphaned && !s.orphaned.Load() {
		s.opts.Log.Warn("the SVID's root is no longer trusted; rejoining with the join token", "serial", svid.Leaf.SerialNumber.Text(16))
	}
	s.orphaned.Store(orphaned)
}

// chainsToSigningRoot reports whether svid chains to the signing root of the
// latest trust bundle, or whether no bundle has been seen yet.
func (s *Source) chainsToSigningRoot(svid *SVID) bool {
	root := s.signingRoot.Load()
	if root == nil || svid == nil {
		return true
	}
	return svid.ChainsTo(root)
}

// ChainsTo reports whether the SVID's chain leads to root.
func (v *SVID) ChainsTo(root *x509.Certificate) bool {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	inter := x509.NewCertPool()
	for _, der := range v.Certificate.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	_, err := v.Leaf.Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, CurrentTime: v.Leaf.NotBefore.Add(time.Second),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err == nil
}

// RotateAt is when an SVID received at received and expiring at notAfter
// should be replaced: at 40–60% of its remaining life, u in [0,1) picking
// the point.
func RotateAt(received, notAfter time.Time, u float64) time.Time {
	life := notAfter.Sub(received)
	return received.Add(time.Duration(float64(life) * (0.4 + 0.2*u)))
}

func (s *Source) sign(ctx context.Context, withToken bool) error {
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, s.key)
	if err != nil {
		return fmt.Errorf("identity: create CSR: %w", err)
	}
	if withToken {
		if s.opts.Token == nil {
			return errors.New("identity: a join token is needed and none was given")
		}
		tok, err := s.opts.Token()
		if err != nil {
			return fmt.Errorf("identity: read join token: %w", err)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	if s.opts.WorkloadID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, workloadHeader, s.opts.WorkloadID)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := s.opts.Dial(ctx)
	if err != nil {
		return fmt.Errorf("identity: connect to control plane: %w", err)
	}
	defer conn.Close()
	resp, err := meshv1.NewIdentityClient(conn).Sign(ctx, &meshv1.SignRequest{
		CsrDer: csr, Service: s.opts.Service, Namespace: s.opts.Namespace,
	})
	if err != nil {
		return fmt.Errorf("identity: sign: %w", err)
	}
	svid, err := s.install(resp)
	if err != nil {
		return err
	}
	s.opts.Log.Info("SVID installed", "id", svid.ID.String(), "serial", svid.Leaf.SerialNumber.Text(16),
		"expires", svid.Leaf.NotAfter.Format(time.RFC3339), "token", withToken)
	if s.opts.OnRotate != nil {
		s.opts.OnRotate(svid)
	}
	return nil
}

// install checks what the control plane returned before using it: the leaf
// must certify our key and carry the identity we asked for.
func (s *Source) install(resp *meshv1.SignResponse) (*SVID, error) {
	if len(resp.GetCertChainDer()) == 0 {
		return nil, errors.New("identity: control plane returned an empty certificate chain")
	}
	leaf, err := x509.ParseCertificate(resp.CertChainDer[0])
	if err != nil {
		return nil, fmt.Errorf("identity: parse SVID: %w", err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&s.key.PublicKey) {
		return nil, errors.New("identity: SVID does not certify this proxy's key")
	}
	id, err := spiffe.FromCert(leaf)
	if err != nil {
		return nil, fmt.Errorf("identity: SVID: %w", err)
	}
	if id.Service != s.opts.Service || id.Namespace != s.opts.Namespace {
		return nil, fmt.Errorf("identity: SVID is for %s, asked for %s/%s", id, s.opts.Namespace, s.opts.Service)
	}
	var bundle []*x509.Certificate
	for i, der := range resp.GetTrustBundleDer() {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("identity: trust bundle certificate %d: %w", i, err)
		}
		bundle = append(bundle, c)
	}
	svid := &SVID{
		ID:          id,
		Certificate: &tls.Certificate{Certificate: resp.CertChainDer, PrivateKey: s.key, Leaf: leaf},
		Leaf:        leaf,
		Bundle:      bundle,
		Received:    time.Now(),
	}
	s.cur.Store(svid)
	s.checkOrphaned(svid)
	return svid, nil
}
