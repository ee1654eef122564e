package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/identity"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/token"
	"github.com/weftmesh/weft/internal/testpki"
)

const svidTTL = time.Hour

var quiet = slog.New(slog.DiscardHandler)

// mesh is a control plane's Identity service on a real TLS gRPC port.
type mesh struct {
	kv      *clientv3.Client
	ca      *ca.CA
	tokens  *token.Issuer
	svc     *identity.Service
	metrics *prometheus.Registry
	logs    *lockedBuffer
	addr    string
}

// newMesh starts the service. extraRoot, when not nil, is trusted by the
// server's TLS besides the mesh bundle, as a misconfigured server might.
func newMesh(t *testing.T, extraRoot *testpki.CA) *mesh {
	t.Helper()
	ctx := context.Background()
	kv := storetest.New(t).Client()
	authority, err := ca.Load(ctx, kv, ca.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := token.NewIssuer(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	m := &mesh{kv: kv, ca: authority, tokens: tokens, metrics: prometheus.NewRegistry(), logs: &lockedBuffer{}}
	m.svc = identity.New(identity.Options{
		CA:      authority,
		Tokens:  tokens,
		TTL:     func() time.Duration { return svidTTL },
		Log:     slog.New(slog.NewTextHandler(m.logs, nil)),
		Metrics: m.metrics,
	})

	serving, err := authority.ServingCertificate([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := authority.TrustBundlePool()
	if extraRoot != nil {
		clientCAs.AddCert(extraRoot.Cert)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serving},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS13,
	})))
	meshv1.RegisterIdentityServer(srv, m.svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = lis.Addr().String()
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(lis) })
	t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
	})
	return m
}

// client dials the service, presenting cert as the TLS client certificate
// when it is not nil.
func (m *mesh) client(t *testing.T, cert *tls.Certificate) meshv1.IdentityClient {
	t.Helper()
	cfg := &tls.Config{RootCAs: m.ca.TrustBundlePool(), MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(m.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return meshv1.NewIdentityClient(conn)
}

func (m *mesh) token(t *testing.T, service, namespace string) string {
	t.Helper()
	tok, _, err := m.tokens.Create(context.Background(), service, namespace, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// sign asks for an SVID for namespace/service with a fresh key, sending tok
// as a bearer token when it is not empty. It returns the SVID as a TLS
// certificate on success.
func sign(t *testing.T, c meshv1.IdentityClient, tok, service, namespace string) (*tls.Certificate, *meshv1.SignResponse, error) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if tok != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	resp, err := c.Sign(ctx, &meshv1.SignRequest{CsrDer: csr, Service: service, Namespace: namespace})
	if err != nil {
		return nil, nil, err
	}
	return &tls.Certificate{Certificate: resp.GetCertChainDer(), PrivateKey: key}, resp, nil
}

func wantCode(t *testing.T, err error, code codes.Code, says string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("got %v, want %v", err, code)
	}
	if !strings.Contains(st.Message(), says) {
		t.Errorf("message %q does not say %q", st.Message(), says)
	}
}

func (m *mesh) count(t *testing.T, name, label, value string) float64 {
	t.Helper()
	families, err := m.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return metric.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestSignWithJoinToken(t *testing.T) {
	m := newMesh(t, nil)
	before := time.Now()
	svid, resp, err := sign(t, m.client(t, nil), m.token(t, "frontend", "default"), "frontend", "default")
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTrustDomain() != "weft.local" || len(resp.GetTrustBundleDer()) != 1 || len(resp.GetCertChainDer()) != 1 {
		t.Fatalf("response: trust domain %q, %d roots, %d certificates",
			resp.GetTrustDomain(), len(resp.GetTrustBundleDer()), len(resp.GetCertChainDer()))
	}
	root, err := x509.ParseCertificate(resp.GetTrustBundleDer()[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	leaf, err := x509.ParseCertificate(svid.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("SVID does not verify against the returned bundle: %v", err)
	}
	want := spiffe.ID{TrustDomain: "weft.local", Namespace: "default", Service: "frontend"}
	if id, err := spiffe.FromCert(leaf); err != nil || id != want {
		t.Errorf("SVID identity = %v, %v; want %v", id, err, want)
	}
	if d := leaf.NotAfter.Sub(before.Add(svidTTL)); d < -5*time.Second || d > 5*time.Second {
		t.Errorf("NotAfter = %v, want %v from now", leaf.NotAfter, svidTTL)
	}
	if n := m.count(t, "weft_ca_csrs_signed_total", "auth", "join_token"); n != 1 {
		t.Errorf("weft_ca_csrs_signed_total{auth=join_token} = %v, want 1", n)
	}
	for _, want := range []string{
		`msg="issued SVID"`,
		"spiffe_id=spiffe://weft.local/ns/default/sa/frontend",
		"serial=" + leaf.SerialNumber.Text(16),
		"not_after=" + leaf.NotAfter.UTC().Format(time.RFC3339),
		"auth=join_token",
	} {
		if !strings.Contains(m.logs.String(), want) {
			t.Errorf("issuance log lacks %s:\n%s", want, m.logs.String())
		}
	}
}

// Proxies starting together all sign at once.
func TestSignConcurrent(t *testing.T) {
	m := newMesh(t, nil)
	c := m.client(t, nil)
	tok := m.token(t, "frontend", "default")
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, _, err := sign(t, c, tok, "frontend", "default"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := m.count(t, "weft_ca_csrs_signed_total", "auth", "join_token"); n != 16 {
		t.Errorf("weft_ca_csrs_signed_total{auth=join_token} = %v, want 16", n)
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestSignRefusesAnotherIdentity(t *testing.T) {
	m := newMesh(t, nil)
	c := m.client(t, nil)
	tok := m.token(t, "frontend", "default")

	_, _, err := sign(t, c, tok, "payments", "default")
	wantCode(t, err, codes.PermissionDenied, "join token for default/frontend cannot obtain the identity of default/payments")
	_, _, err = sign(t, c, tok, "frontend", "kube-system")
	wantCode(t, err, codes.PermissionDenied, "cannot obtain the identity of kube-system/frontend")
	_, _, err = sign(t, c, tok, "", "")
	wantCode(t, err, codes.InvalidArgument, "service and namespace are required")

	if n := m.count(t, "weft_ca_csr_failures_total", "reason", "permission_denied"); n != 2 {
		t.Errorf("weft_ca_csr_failures_total{reason=permission_denied} = %v, want 2", n)
	}
}

func TestSignRotatesWithSVID(t *testing.T) {
	m := newMesh(t, nil)
	first, _, err := sign(t, m.client(t, nil), m.token(t, "frontend", "default"), "frontend", "default")
	if err != nil {
		t.Fatal(err)
	}
	// A new connection with the SVID as client certificate and no token.
	withSVID := m.client(t, first)
	second, _, err := sign(t, withSVID, "", "frontend", "default")
	if err != nil {
		t.Fatalf("re-sign with an SVID: %v", err)
	}
	if string(second.Certificate[0]) == string(first.Certificate[0]) {
		t.Error("re-sign returned the same certificate")
	}
	if n := m.count(t, "weft_ca_csrs_signed_total", "auth", "svid"); n != 1 {
		t.Errorf("weft_ca_csrs_signed_total{auth=svid} = %v, want 1", n)
	}

	_, _, err = sign(t, withSVID, "", "payments", "default")
	wantCode(t, err, codes.PermissionDenied,
		"SVID spiffe://weft.local/ns/default/sa/frontend cannot obtain the identity of default/payments")
	// The SVID wins over a token for another identity on the same call.
	_, _, err = sign(t, withSVID, m.token(t, "payments", "default"), "payments", "default")
	wantCode(t, err, codes.PermissionDenied, "SVID spiffe://weft.local/ns/default/sa/frontend cannot obtain")
}

func TestSignRefusesUnauthenticated(t *testing.T) {
	m := newMesh(t, nil)
	c := m.client(t, nil)
	ctx := context.Background()

	// Issued two hours ago for one hour, by a replica sharing the store.
	past, err := token.NewIssuer(ctx, m.kv, token.WithClock(func() time.Time { return time.Now().Add(-2 * time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := past.Create(ctx, "frontend", "default", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	revoked, rec, err := m.tokens.Create(ctx, "frontend", "default", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.tokens.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, token, says string
		logged            string // why, in a word, in the refusal's log line
	}{
		{"no credentials", "", "no credentials", ""},
		{"expired token", expired, "expired at", "auth_refused=expired"},
		{"revoked token", revoked, "unknown or revoked", "auth_refused=revoked"},
		{"forged token", "weft1.e30." + strings.Repeat("A", 86), "signature does not verify", "auth_refused=bad_signature"},
		{"not a token", "hunter2", `does not start with "weft1."`, "auth_refused=malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := sign(t, c, tc.token, "frontend", "default")
			wantCode(t, err, codes.Unauthenticated, tc.says)
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("error %q repeats the token", err)
			}
			if tc.logged != "" && !strings.Contains(m.logs.String(), tc.logged) {
				t.Errorf("refusal log lacks %s:\n%s", tc.logged, m.logs.String())
			}
		})
	}

	// Authorization that is not a bearer token.
	callCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Basic dXNlcjpwYXNz")
	_, err = c.Sign(callCtx, &meshv1.SignRequest{Service: "frontend", Namespace: "default"})
	wantCode(t, err, codes.Unauthenticated, `authorization must be "Bearer <join token>"`)

	if n := m.count(t, "weft_ca_csr_failures_total", "reason", "unauthenticated"); n != float64(len(tests)+1) {
		t.Errorf("weft_ca_csr_failures_total{reason=unauthenticated} = %v, want %d", n, len(tests)+1)
	}
	if n := m.count(t, "weft_ca_csrs_signed_total", "auth", "join_token"); n != 0 {
		t.Errorf("weft_ca_csrs_signed_total{auth=join_token} = %v, want 0", n)
	}
}

func TestSignRefusesBadCSR(t *testing.T) {
	m := newMesh(t, nil)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+m.token(t, "frontend", "default"))
	_, err := m.client(t, nil).Sign(ctx, &meshv1.SignRequest{CsrDer: []byte("not a CSR"), Service: "frontend", Namespace: "default"})
	wantCode(t, err, codes.InvalidArgument, "invalid certificate signing request")
}

// A server whose TLS also trusts another CA must still not take that CA's
// certificates as mesh identities.
func TestSignRefusesCertificateFromAnotherCA(t *testing.T) {
	other := testpki.NewCA(t, "another CA")
	m := newMesh(t, other)
	cert := other.Issue(t, spiffe.ID{TrustDomain: "weft.local", Namespace: "default", Service: "frontend"}, testpki.Options{})
	_, _, err := sign(t, m.client(t, &cert), "", "frontend", "default")
	wantCode(t, err, codes.Unauthenticated, "client certificate was not issued by the mesh CA")
}

// An SVID that expires while its connection stays open no longer
// authenticates; a join token sent along still does. TLS checks expiry only
// at the handshake, so this calls the service with the connection's state.
func TestSignRefusesSVIDExpiredOnOpenConnection(t *testing.T) {
	m := newMesh(t, nil)
	id := spiffe.ID{TrustDomain: "weft.local", Namespace: "default", Service: "frontend"}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := m.ca.SignCSR(csr, id, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(m.ca.TrustBundle()[0])
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(leaf.NotAfter) + 50*time.Millisecond)

	ctx := peer.NewContext(context.Background(), &peer.Peer{
		Addr:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000},
		AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf, root}}}},
	})
	req := &meshv1.SignRequest{CsrDer: csr, Service: "frontend", Namespace: "default"}
	_, err = m.svc.Sign(ctx, req)
	wantCode(t, err, codes.Unauthenticated, "not now")

	withToken := metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+m.token(t, "frontend", "default")))
	if _, err := m.svc.Sign(withToken, req); err != nil {
		t.Errorf("a join token beside a lapsed SVID: %v", err)
	}
}

func TestSignWithoutTokenIssuer(t *testing.T) {
	m := newMesh(t, nil)
	// A second service on the same registry shares the counters instead of
	// panicking, and without an Issuer it takes no join tokens.
	svc := identity.New(identity.Options{CA: m.ca, Log: quiet, Metrics: m.metrics})
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+m.token(t, "frontend", "default")))
	_, err := svc.Sign(ctx, &meshv1.SignRequest{Service: "frontend", Namespace: "default"})
	wantCode(t, err, codes.Unauthenticated, "does not accept join tokens")
	if n := m.count(t, "weft_ca_csr_failures_total", "reason", "unauthenticated"); n != 1 {
		t.Errorf("shared weft_ca_csr_failures_total{reason=unauthenticated} = %v, want 1", n)
	}
}
