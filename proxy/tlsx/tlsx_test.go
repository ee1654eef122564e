package tlsx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/internal/testnet"
	"github.com/weftmesh/weft/internal/testpki"
)

var (
	clientID = spiffe.ID{TrustDomain: "weft.test", Namespace: "default", Service: "a"}
	serverID = spiffe.ID{TrustDomain: "weft.test", Namespace: "default", Service: "b"}
)

func bundleOf(t *testing.T, ca *testpki.CA) *TrustBundle {
	t.Helper()
	b, err := NewTrustBundle(ca.PEM())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustMatcher(t *testing.T, kind MatchKind, pattern string) StringMatcher {
	t.Helper()
	m, err := NewStringMatcher(kind, pattern, false)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type testSVID struct {
	cur atomic.Pointer[tls.Certificate]
}

func (s *testSVID) Certificate() *tls.Certificate { return s.cur.Load() }

func newSVID(t *testing.T, ca *testpki.CA, id spiffe.ID, o testpki.Options) *testSVID {
	s := &testSVID{}
	c := ca.Issue(t, id, o)
	s.cur.Store(&c)
	return s
}

// handshake runs one TLS handshake over loopback and returns the client's
// view of the server certificate and each side's error.
func handshake(t *testing.T, server, client *tls.Config) (peer *x509.Certificate, serverErr, clientErr error) {
	t.Helper()
	a, b := testnet.TCPPair(t)
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		s := tls.Server(a, server)
		err := s.HandshakeContext(ctx)
		if err == nil {
			// TLS 1.3 clients finish before the server checked them: read
			// so that a refused client sees the alert.
			_, err = s.Write([]byte{1})
		}
		if err != nil {
			a.Close()
		}
		errc <- err
	}()
	c := tls.Client(b, client)
	clientErr = c.HandshakeContext(ctx)
	if clientErr == nil {
		peer = c.ConnectionState().PeerCertificates[0]
		buf := make([]byte, 1)
		_, clientErr = c.Read(buf)
	}
	if clientErr != nil {
		b.Close()
	}
	return peer, <-errc, clientErr
}

type pair struct {
	ca             *testpki.CA
	server, client *testSVID
	bundle         atomic.Pointer[TrustBundle]
	serverConf     *tls.Config
	clientConf     *tls.Config
}

func newPair(t *testing.T) *pair {
	p := &pair{ca: testpki.NewCA(t, "mesh")}
	p.server = newSVID(t, p.ca, serverID, testpki.Options{})
	p.client = newSVID(t, p.ca, clientID, testpki.Options{})
	p.bundle.Store(bundleOf(t, p.ca))
	p.serverConf = ServerConfig(p.server, &PeerValidator{
		Bundle: p.bundle.Load, BundleName: "ROOTCA", Usage: x509.ExtKeyUsageClientAuth,
		URISANs: []StringMatcher{mustMatcher(t, MatchPrefix, "spiffe://weft.test/")},
	}, []string{"h2"})
	p.clientConf = ClientConfig(p.client, &PeerValidator{
		Bundle: p.bundle.Load, BundleName: "ROOTCA", Usage: x509.ExtKeyUsageServerAuth,
		URISANs: []StringMatcher{mustMatcher(t, MatchExact, serverID.String())},
	}, []string{"h2"}, "")
	return p
}

func TestMutualTLS(t *testing.T) {
	p := newPair(t)
	peer, serr, cerr := handshake(t, p.serverConf, p.clientConf)
	if serr != nil || cerr != nil {
		t.Fatalf("server %v, client %v", serr, cerr)
	}
	if id, _ := spiffe.FromCert(peer); id != serverID {
		t.Fatalf("client saw %v", id)
	}
}

func TestRotationAppliesToNewHandshakes(t *testing.T) {
	p := newPair(t)
	first, _, _ := handshake(t, p.serverConf, p.clientConf)
	next := p.ca.Issue(t, serverID, testpki.Options{})
	p.server.cur.Store(&next)
	second, _, _ := handshake(t, p.serverConf, p.clientConf)
	if first.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Fatal("the rotated SVID was not presented")
	}
	if second.SerialNumber.Cmp(next.Leaf.SerialNumber) != 0 {
		t.Fatal("presented an unexpected certificate")
	}
}

func TestTrustBundleAppliesToNewHandshakes(t *testing.T) {
	p := newPair(t)
	p.bundle.Store(bundleOf(t, testpki.NewCA(t, "other root")))
	if _, serr, cerr := handshake(t, p.serverConf, p.clientConf); serr == nil && cerr == nil {
		t.Fatal("handshake succeeded against a bundle without the mesh root")
	}
	p.bundle.Store(bundleOf(t, p.ca))
	if _, serr, cerr := handshake(t, p.serverConf, p.clientConf); serr != nil || cerr != nil {
		t.Fatalf("after restoring the bundle: server %v, client %v", serr, cerr)
	}
	p.bundle.Store(nil)
	if _, _, cerr := handshake(t, p.serverConf, p.clientConf); cerr == nil || !strings.Contains(cerr.Error(), `"ROOTCA" not received yet`) {
		t.Fatalf("without a bundle: %v", cerr)
	}
}

func TestRefusedPeers(t *testing.T) {
	p := newPair(t)
	foreign := testpki.NewCA(t, "foreign")
	tests := []struct {
		name   string
		client *testSVID
		server *testSVID
		// serverSide is true when the server refuses the client.
		serverSide bool
		want       string
	}{
		{"foreign CA client", newSVID(t, foreign, clientID, testpki.Options{}), p.server, true, "unknown authority"},
		{"expired client", newSVID(t, p.ca, clientID, testpki.Options{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Second)}), p.server, true, "expired"},
		{"client of another trust domain", newSVID(t, p.ca, spiffe.ID{TrustDomain: "evil.test", Namespace: "default", Service: "a"}, testpki.Options{}), p.server, true, "match none"},
		{"wrong server identity", p.client, newSVID(t, p.ca, spiffe.ID{TrustDomain: "weft.test", Namespace: "default", Service: "c"}, testpki.Options{}), false, "match none"},
		{"no client certificate", &testSVID{}, p.server, true, "didn't provide a certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := p.serverConf.Clone()
			server.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return tt.server.Certificate(), nil }
			client := p.clientConf.Clone()
			client.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if c := tt.client.Certificate(); c != nil {
					return c, nil
				}
				return &tls.Certificate{}, nil
			}
			_, serr, cerr := handshake(t, server, client)
			if serr == nil || cerr == nil {
				t.Fatalf("server %v, client %v: want both to fail", serr, cerr)
			}
			refuser := cerr
			if tt.serverSide {
				refuser = serr
			}
			if !strings.Contains(refuser.Error(), tt.want) {
				t.Fatalf("refusal %q does not mention %q", refuser, tt.want)
			}
		})
	}
}

func TestNoSVID(t *testing.T) {
	p := newPair(t)
	p.server.cur.Store(nil)
	_, serr, _ := handshake(t, p.serverConf, p.clientConf)
	if !errors.Is(serr, ErrNoSVID) {
		t.Fatalf("server without an SVID: %v", serr)
	}
}

func TestNewTrustBundle(t *testing.T) {
	ca1, ca2 := testpki.NewCA(t, "one"), testpki.NewCA(t, "two")
	b, err := NewTrustBundle(append(ca1.PEM(), ca2.PEM()...))
	if err != nil || len(b.Roots()) != 2 {
		t.Fatalf("two roots: %v %v", b, err)
	}
	for _, bad := range []string{"", "garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := NewTrustBundle([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestStringMatcher(t *testing.T) {
	tests := []struct {
		kind       MatchKind
		pattern    string
		ignoreCase bool
		in         string
		want       bool
	}{
		{MatchExact, "spiffe://td/ns/a/sa/b", false, "spiffe://td/ns/a/sa/b", true},
		{MatchExact, "spiffe://td/ns/a/sa/b", false, "spiffe://td/ns/a/sa/bb", false},
		{MatchExact, "spiffe://TD/x", true, "spiffe://td/X", true},
		{MatchPrefix, "spiffe://td/", false, "spiffe://td/ns/a/sa/b", true},
		{MatchPrefix, "spiffe://td/", false, "spiffe://td.evil/ns/a", false},
		{MatchSuffix, "/sa/b", false, "spiffe://td/ns/a/sa/b", true},
		{MatchContains, "/ns/a/", false, "spiffe://td/ns/a/sa/b", true},
		{MatchRegex, `spiffe://td/ns/[a-z]+/sa/b`, false, "spiffe://td/ns/abc/sa/b", true},
		{MatchRegex, `spiffe://td/ns/[a-z]+`, false, "spiffe://td/ns/abc/sa/b", false}, // whole input
	}
	for _, tt := range tests {
		m, err := NewStringMatcher(tt.kind, tt.pattern, tt.ignoreCase)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Match(tt.in); got != tt.want {
			t.Errorf("%v.Match(%q) = %v, want %v", m, tt.in, got, tt.want)
		}
	}
	if _, err := NewStringMatcher(MatchRegex, "(", false); err == nil {
		t.Error("a bad regex compiled")
	}
}
