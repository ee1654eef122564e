package jwt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/filter"
)

// jwksServer serves a key set over TLS on loopback and counts fetches.
type jwksServer struct {
	*httptest.Server
	keys    atomic.Pointer[string]
	fail    atomic.Bool
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, keys string) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.keys.Store(&keys)
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if s.fail.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(*s.keys.Load()))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) rootsPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}))
}

// syncBuffer is a log sink safe for the fetch goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// remoteFilter is a filter that requires a token whose keys are at srv.
func remoteFilter(t *testing.T, srv *jwksServer, cache time.Duration, log *syncBuffer) *Filter {
	t.Helper()
	c := &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"issuer-0": {
			Issuer:            "https://idp.test",
			PayloadInMetadata: "payload",
			JwksSourceSpecifier: &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
				HttpUri: &corev3.HttpUri{
					Uri:              srv.URL + "/jwks.json",
					HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "jwks|127.0.0.1|0"},
					Timeout:          durationpb.New(2 * time.Second),
				},
				CacheDuration: durationpb.New(cache),
			}},
		}},
		Rules: []*jwtv3.RequirementRule{prefixRule("/", "required")},
		RequirementMap: map[string]*jwtv3.JwtRequirement{
			"required": providerReq("issuer-0"),
		},
	}
	md, err := structpb.NewStruct(map[string]any{xdsmeta.JWKSCAKey: map[string]any{"issuer-0": srv.rootsPEM()}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(c, filter.Env{Log: slog.New(slog.NewTextHandler(log, nil)), Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	f.providers[0].remote.minRefetch = 50 * time.Millisecond
	return f
}

func decide(f *Filter, token string) string {
	d := f.DecodeHeaders(request("/", token), &filter.Stream{}, nil)
	if d.Reply != nil {
		return d.Reply.Reason
	}
	return ""
}

// TestRemoteKeys: the first request waits for the fetch; a rotated key is
// picked up when a token names it; a failing server keeps the keys in
// hand, and says so in the log.
func TestRemoteKeys(t *testing.T) {
	k1, k2 := newRSASigner(t, "k1"), newECSigner(t, "k2")
	srv := newJWKSServer(t, jwks(k1))
	var log syncBuffer
	f := remoteFilter(t, srv, 200*time.Millisecond, &log)
	f.now = time.Now
	c := func(s *signer) string {
		return s.mint(t, map[string]any{"iss": "https://idp.test", "exp": time.Now().Add(time.Hour).Unix()})
	}

	if got := decide(f, c(k1)); got != "" {
		t.Fatalf("first token: refused %s", got)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after the first token, want 1", n)
	}

	// Rotation: the server now publishes k2 alone.
	rotated := jwks(k2)
	srv.keys.Store(&rotated)
	time.Sleep(60 * time.Millisecond) // past minRefetch
	if got := decide(f, c(k2)); got != "" {
		t.Fatalf("rotated key: refused %s", got)
	}

	// A flood of made-up kids fetches at most once per minRefetch.
	before := srv.fetches.Load()
	for range 50 {
		if got := decide(f, newECSigner(t, "made-up").mint(t, map[string]any{"iss": "https://idp.test"})); got != "jwt_unknown_key" {
			t.Fatalf("made-up kid: %q, want jwt_unknown_key", got)
		}
	}
	if n := srv.fetches.Load() - before; n > 2 {
		t.Errorf("%d fetches for 50 unknown kids within the interval, want at most 2", n)
	}

	// The server fails: past the cache duration, the refetch fails and
	// the keys in hand keep working.
	srv.fail.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(log.String(), "jwks fetch failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed fetch logged; log:\n%s", log.String())
		}
		if got := decide(f, c(k2)); got != "" {
			t.Fatalf("server failing: refused %s", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := decide(f, c(k2)); got != "" {
		t.Fatalf("after a failed fetch: refused %s", got)
	}

	// The server goes away altogether.
	srv.Close()
	time.Sleep(250 * time.Millisecond)
	for range 3 {
		if got := decide(f, c(k2)); got != "" {
			t.Fatalf("server gone: refused %s", got)
		}
		time.Sleep(60 * time.Millisecond)
	}
}

// TestRemoteKeysNeverFetched: without keys, a request is refused as Envoy
// refuses it, and the fetch is not retried on every request.
func TestRemoteKeysNeverFetched(t *testing.T) {
	k1 := newRSASigner(t, "k1")
	srv := newJWKSServer(t, jwks(k1))
	srv.fail.Store(true)
	var log syncBuffer
	f := remoteFilter(t, srv, time.Minute, &log)
	f.now = time.Now
	tok := k1.mint(t, map[string]any{"iss": "https://idp.test"})
	for range 10 {
		if got := decide(f, tok); got != "jwt_jwks_unavailable" {
			t.Fatalf("refused %q, want jwt_jwks_unavailable", got)
		}
	}
	if n := srv.fetches.Load(); n > 2 {
		t.Errorf("%d fetches for 10 requests within the interval, want at most 2", n)
	}
	srv.fail.Store(false)
	time.Sleep(60 * time.Millisecond)
	if got := decide(f, tok); got != "" {
		t.Fatalf("after the server recovered: refused %s", got)
	}
}

// TestRemoteKeysRejectUntrustedServer: a server whose certificate does not
// chain to the configured roots is not trusted.
func TestRemoteKeysRejectUntrustedServer(t *testing.T) {
	k1 := newRSASigner(t, "k1")
	srv := newJWKSServer(t, jwks(k1))
	other := &jwksServer{}
	keys := jwks(k1)
	other.keys.Store(&keys)
	other.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.fetches.Add(1)
		_, _ = w.Write([]byte(*other.keys.Load()))
	}))
	other.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	other.StartTLS()
	t.Cleanup(other.Close)
	var log syncBuffer
	f := remoteFilter(t, srv, time.Minute, &log)
	f.now = time.Now
	// The same filter, but the key set is at the other server, which the
	// roots (srv's) do not cover.
	f.providers[0].remote = newRemoteKeys(other.URL, f.providers[0].remote.client.Transport.(*http.Transport).TLSClientConfig.RootCAs, time.Minute, time.Second, slog.New(slog.NewTextHandler(&log, nil)))
	if got := decide(f, k1.mint(t, map[string]any{"iss": "https://idp.test"})); got != "jwt_jwks_unavailable" {
		t.Fatalf("untrusted server: %q, want jwt_jwks_unavailable", got)
	}
	if !strings.Contains(log.String(), "certificate") {
		t.Errorf("the log does not say why:\n%s", log.String())
	}
	if other.fetches.Load() != 0 {
		t.Error("the untrusted server was sent a request")
	}
}

// selfSigned is a certificate for 127.0.0.1 that nothing trusts.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestSharedAcrossRebuilds: two filters built from the same config share
// the fetched keys, as a listener rebuilt on a config change does.
func TestSharedAcrossRebuilds(t *testing.T) {
	k1 := newRSASigner(t, "k1")
	srv := newJWKSServer(t, jwks(k1))
	var log syncBuffer
	a := remoteFilter(t, srv, time.Minute, &log)
	a.now = time.Now
	tok := k1.mint(t, map[string]any{"iss": "https://idp.test"})
	if got := decide(a, tok); got != "" {
		t.Fatal(got)
	}
	b := remoteFilter(t, srv, time.Minute, &log)
	b.now = time.Now
	if got := decide(b, tok); got != "" {
		t.Fatal(got)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("%d fetches for two filters of one config, want 1", n)
	}
	// The source is held weakly, by the filters that use it: a is alive
	// until here, as the old listener is until the rebuilt one replaces
	// it. Without this, a collection between the builds could drop it.
	runtime.KeepAlive(a)
}
