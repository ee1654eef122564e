// Package identity holds the proxy's private key and its current SVID, and
// keeps the SVID fresh. The key is made here and never leaves the process: the
// control plane only ever sees a certificate signing request.
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

// Source is the proxy's identity. Its zero value is not usable; call New.
type Source struct {
	opts Options
	key  *ecdsa.PrivateKey
	cur  atomic.Pointer[SVID]
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
	return &Source{opts: opts, key: key}, nil
}

// Certificate returns the current SVID, or nil before the proxy has joined
// and once the SVID has expired. An expired certificate proves nothing, and
// presenting one would fail the very handshake that rejoins with the token:
// the control plane verifies any client certificate it is shown.
func (s *Source) Certificate() *tls.Certificate {
	if v := s.cur.Load(); v != nil && !time.Now().After(v.Leaf.NotAfter) {
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
// started together does not rotate together) until ctx is done. A failed
// rotation is retried with backoff; once the SVID has expired the join token
// is used again.
func (s *Source) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		cur := s.cur.Load()
		if cur == nil {
			return errors.New("identity: Run called before Join")
		}
		wait := time.Until(RotateAt(cur.Received, cur.Leaf.NotAfter, mathrand.Float64()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		for {
			expired := time.Now().After(cur.Leaf.NotAfter)
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
	}
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
	return svid, nil
}
