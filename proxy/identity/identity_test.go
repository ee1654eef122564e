package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/controlplane/ca"
	cpidentity "github.com/weftmesh/weft/controlplane/identity"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/token"
	"github.com/weftmesh/weft/proxy/tlsx"
)

// patience bounds every wait for something that should happen.
const patience = 5 * time.Second

var quiet = slog.New(slog.DiscardHandler)

func TestRotateAt(t *testing.T) {
	received := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		life time.Duration
		u    float64
		want time.Duration // after received
	}{
		{name: "earliest", life: 10 * time.Hour, u: 0, want: 4 * time.Hour},
		{name: "middle", life: 10 * time.Hour, u: 0.5, want: 5 * time.Hour},
		{name: "quarter", life: 24 * time.Hour, u: 0.25, want: 10*time.Hour + 48*time.Minute},
		{name: "latest", life: 10 * time.Hour, u: 1 - 1e-12, want: 6 * time.Hour}, // u stays below 1
		{name: "short life", life: 2 * time.Second, u: 0.5, want: time.Second},
		{name: "no life left", life: 0, u: 0.5, want: 0},
		// An SVID that arrives already expired is due at once: the time is
		// not after the moment it was received.
		{name: "expired", life: -time.Hour, u: 0.5, want: -30 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := RotateAt(received, received.Add(tc.life), tc.u).Sub(received)
			if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("RotateAt after %v of life, u=%v: %v after receipt, want %v", tc.life, tc.u, got, tc.want)
			}
		})
	}
	// However u falls, the rotation lands between 40% and 60% of the life.
	for u := 0.0; u < 1; u += 0.01 {
		got := RotateAt(received, received.Add(100*time.Hour), u).Sub(received)
		if got < 40*time.Hour || got > 60*time.Hour {
			t.Errorf("u=%v: rotation %v into a life of 100h", u, got)
		}
	}
}

// controlPlane is the real Identity service, with the mesh CA and join
// tokens over an embedded etcd, served on 127.0.0.1 with the control
// plane's TLS settings.
type controlPlane struct {
	addr   string
	ca     *ca.CA
	tokens *token.Issuer
	ttl    atomic.Int64 // lifetime of the next SVID
	kv     *clientv3.Client
}

func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	ctx := context.Background()
	st := storetest.New(t)
	authority, err := ca.Load(ctx, st.Client(), ca.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := token.NewIssuer(ctx, st.Client())
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{ca: authority, tokens: tokens, kv: st.Client()}
	cp.ttl.Store(int64(time.Hour))
	serving, err := authority.ServingCertificate([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// As `weft control` serves gRPC: a client certificate is verified when
	// one is given (a proxy that has joined) and not required (a proxy
	// joining with its token).
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{serving},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    authority.TrustBundlePool(),
	})))
	meshv1.RegisterIdentityServer(g, cpidentity.New(cpidentity.Options{
		CA: authority, Tokens: tokens, Log: quiet,
		TTL: func() time.Duration { return time.Duration(cp.ttl.Load()) },
	}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp.addr = lis.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	t.Cleanup(func() {
		g.Stop()
		<-served
	})
	return cp
}

func (cp *controlPlane) joinToken(t *testing.T, service string) string {
	t.Helper()
	tok, _, err := cp.tokens.Create(context.Background(), service, "default", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dialer connects as the proxy does: it authenticates the control plane by
// its SPIFFE ID under the mesh root, and presents the current SVID of
// source, if there is one.
func (cp *controlPlane) dialer(source func() *Source) Dialer {
	roots := cp.ca.TrustBundlePool()
	creds := credentials.NewTLS(tlsx.ControlPlaneClient(roots, func() *tls.Certificate { return source().Certificate() }))
	return func(context.Context) (*grpc.ClientConn, error) {
		return grpc.NewClient(cp.addr, grpc.WithTransportCredentials(creds))
	}
}

// proxy is a Source as the proxy sets it up, with what it was asked and told.
type proxy struct {
	*Source

	mu         sync.Mutex
	tokenReads int
	rotations  []*SVID
}

func newProxy(t *testing.T, cp *controlPlane, service, tok string) *proxy {
	t.Helper()
	p := &proxy{}
	src, err := New(Options{
		Service: service, Namespace: "default", Log: quiet,
		Token: func() (string, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.tokenReads++
			return tok, nil
		},
		Dial: cp.dialer(func() *Source { return p.Source }),
		OnRotate: func(s *SVID) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.rotations = append(p.rotations, s)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Source = src
	return p
}

func (p *proxy) counts() (tokenReads, rotations int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokenReads, len(p.rotations)
}

// checkSVID checks that svid is the proxy's identity under the mesh root
// and certifies the proxy's own key.
func checkSVID(t *testing.T, p *proxy, cp *controlPlane, svid *SVID) {
	t.Helper()
	want := "spiffe://weft.local/ns/default/sa/" + p.opts.Service
	if svid.ID.String() != want {
		t.Errorf("SVID ID %s, want %s", svid.ID, want)
	}
	if len(svid.Leaf.URIs) != 1 || svid.Leaf.URIs[0].String() != want {
		t.Errorf("SVID URI SANs %v, want exactly %s", svid.Leaf.URIs, want)
	}
	if !p.key.PublicKey.Equal(svid.Leaf.PublicKey) {
		t.Error("the SVID does not certify the proxy's key")
	}
	if svid.Certificate.PrivateKey != p.key || svid.Certificate.Leaf != svid.Leaf {
		t.Error("the TLS certificate does not pair the SVID with the proxy's key")
	}
	roots := x509.NewCertPool()
	for _, c := range svid.Bundle {
		roots.AddCert(c)
	}
	if _, err := svid.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the SVID does not verify against the bundle it came with: %v", err)
	}
	if len(svid.Bundle) != len(cp.ca.TrustBundle()) || !svid.Bundle[0].Equal(mustParse(t, cp.ca.TrustBundle()[0])) {
		t.Error("the bundle is not the mesh's")
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestJoin(t *testing.T) {
	cp := startControlPlane(t)
	ctx := context.Background()

	t.Run("with the service's token", func(t *testing.T) {
		p := newProxy(t, cp, "web", cp.joinToken(t, "web"))
		if p.Certificate() != nil || p.Current() != nil {
			t.Fatal("an identity before joining")
		}
		if err := p.Join(ctx); err != nil {
			t.Fatal(err)
		}
		svid := p.Current()
		if svid == nil {
			t.Fatal("no SVID after Join")
		}
		checkSVID(t, p, cp, svid)
		if p.Certificate() != svid.Certificate {
			t.Error("Certificate() is not the SVID just installed")
		}
		tokenReads, rotations := p.counts()
		if tokenReads != 1 || rotations != 1 || p.rotations[0] != svid {
			t.Errorf("%d token reads and %d OnRotate calls, want one of each with the SVID", tokenReads, rotations)
		}
	})

	t.Run("with another service's token", func(t *testing.T) {
		p := newProxy(t, cp, "web", cp.joinToken(t, "payments"))
		err := p.Join(ctx)
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("Join with a token of payments as web: %v, want PermissionDenied", err)
		}
		if _, rotations := p.counts(); p.Current() != nil || p.Certificate() != nil || rotations != 0 {
			t.Error("an identity was installed from a refused join")
		}
	})

	t.Run("with no token", func(t *testing.T) {
		p := newProxy(t, cp, "web", "")
		p.opts.Token = nil
		if err := p.Join(ctx); err == nil || p.Current() != nil {
			t.Fatalf("Join without a token: %v, want an error and no SVID", err)
		}
	})
}

// TestRotationUsesTheSVID: a rotation authenticates with the current SVID
// alone, and installs a new certificate for the same key.
func TestRotationUsesTheSVID(t *testing.T) {
	cp := startControlPlane(t)
	ctx := context.Background()

	// Without an SVID and without a token the control plane refuses: what
	// authenticates a rotation is the SVID.
	stranger := newProxy(t, cp, "web", "")
	if err := stranger.sign(ctx, false); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("signing with no credential: %v, want Unauthenticated", err)
	}

	p := newProxy(t, cp, "web", cp.joinToken(t, "web"))
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
	first := p.Current()
	if err := p.sign(ctx, false); err != nil {
		t.Fatal(err)
	}
	second := p.Current()
	if second == first || second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatal("rotation did not install a new SVID")
	}
	checkSVID(t, p, cp, second)
	if p.Certificate() != second.Certificate {
		t.Error("Certificate() is not the rotated SVID")
	}
	tokenReads, rotations := p.counts()
	if tokenReads != 1 {
		t.Errorf("the token was read %d times, want only for the join", tokenReads)
	}
	if rotations != 2 || p.rotations[1] != second {
		t.Errorf("%d OnRotate calls, want 2, the last with the new SVID", rotations)
	}
}

// TestRunRotatesBeforeExpiry: Run replaces a short-lived SVID well before it
// expires, with the SVID, and returns nil when cancelled.
func TestRunRotatesBeforeExpiry(t *testing.T) {
	cp := startControlPlane(t)
	// Rotation falls due 40–60% into the SVID's life: about 1.5s in.
	cp.ttl.Store(int64(3 * time.Second))
	p := newProxy(t, cp, "web", cp.joinToken(t, "web"))
	if err := p.Join(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := p.Current()

	done := runSource(t, p)
	waitFor(t, "a rotation", func() bool { _, n := p.counts(); return n >= 2 })
	second := p.Current()
	if second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Error("the rotated SVID has the old serial number")
	}
	if !second.Received.Before(first.Leaf.NotAfter) {
		t.Errorf("rotated at %v, after the old SVID expired at %v", second.Received, first.Leaf.NotAfter)
	}
	checkSVID(t, p, cp, second)
	if tokenReads, _ := p.counts(); tokenReads != 1 {
		t.Errorf("the token was read %d times, want only for the join", tokenReads)
	}
	done()
}

// TestRunRejoinsOnceExpired: when the SVID has lapsed (the proxy was cut off
// from the control plane for too long), Run joins again with the token.
func TestRunRejoinsOnceExpired(t *testing.T) {
	cp := startControlPlane(t)
	cp.ttl.Store(int64(time.Second))
	p := newProxy(t, cp, "web", cp.joinToken(t, "web"))
	if err := p.Join(context.Background()); err != nil {
		t.Fatal(err)
	}
	expired := p.Current()
	waitFor(t, "the SVID to expire", func() bool { return time.Now().After(expired.Leaf.NotAfter) })
	if p.Certificate() != nil {
		t.Error("Certificate() still offers the expired SVID")
	}
	if p.Current() != expired {
		t.Error("Current() no longer describes the last SVID")
	}

	cp.ttl.Store(int64(time.Hour))
	done := runSource(t, p)
	waitFor(t, "a new SVID", func() bool { _, n := p.counts(); return n >= 2 })
	checkSVID(t, p, cp, p.Current())
	if p.Certificate() == nil {
		t.Error("no certificate after rejoining")
	}
	if tokenReads, _ := p.counts(); tokenReads != 2 {
		t.Errorf("the token was read %d times, want twice (join and rejoin)", tokenReads)
	}
	done()
}

func TestRunBeforeJoin(t *testing.T) {
	src, err := New(Options{Service: "web", Namespace: "default", Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Run(context.Background()); err == nil {
		t.Fatal("Run before Join returned nil")
	}
}

// runSource runs p.Run; the returned func cancels it and checks that it
// returns nil at once.
func runSource(t *testing.T, p *proxy) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run returned %v when cancelled, want nil", err)
			}
		case <-time.After(patience):
			t.Errorf("Run did not return within %v of being cancelled", patience)
		}
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(stop) })
	return func() { once.Do(stop) }
}

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", patience, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
