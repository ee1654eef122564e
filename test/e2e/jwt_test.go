package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// jwtSigner mints the test's tokens with an RSA (RS256) or P-256 (ES256) key.
type jwtSigner struct {
	kid string
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

func newJWTSigner(t *testing.T, kid string, ec bool) *jwtSigner {
	t.Helper()
	s := &jwtSigner{kid: kid}
	var err error
	if ec {
		s.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		s.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwks is the key set publishing the signers' public keys.
func jwtKeySet(signers ...*jwtSigner) string {
	var keys []string
	for _, s := range signers {
		if s.rsa != nil {
			keys = append(keys, fmt.Sprintf(`{"kty":"RSA","kid":%q,"alg":"RS256","use":"sig","n":%q,"e":%q}`,
				s.kid, b64url(s.rsa.N.Bytes()), b64url(big.NewInt(int64(s.rsa.E)).Bytes())))
		} else {
			keys = append(keys, fmt.Sprintf(`{"kty":"EC","kid":%q,"crv":"P-256","alg":"ES256","x":%q,"y":%q}`,
				s.kid, b64url(s.ec.X.FillBytes(make([]byte, 32))), b64url(s.ec.Y.FillBytes(make([]byte, 32)))))
		}
	}
	return `{"keys":[` + strings.Join(keys, ",") + `]}`
}

// mint signs a token with claims iss, aud, exp and extra.
func (s *jwtSigner) mint(t *testing.T, iss, aud string, exp time.Time, extra map[string]any) string {
	t.Helper()
	claims := map[string]any{"iss": iss, "sub": "alice", "iat": time.Now().Unix(), "exp": exp.Unix()}
	if aud != "" {
		claims["aud"] = aud
	}
	for k, v := range extra {
		claims[k] = v
	}
	alg := "ES256"
	if s.rsa != nil {
		alg = "RS256"
	}
	h, _ := json.Marshal(map[string]string{"alg": alg, "kid": s.kid, "typ": "JWT"})
	p, _ := json.Marshal(claims)
	signed := b64url(h) + "." + b64url(p)
	sum := sha256.Sum256([]byte(signed))
	var sig []byte
	var err error
	if s.rsa != nil {
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.rsa, crypto.SHA256, sum[:])
	} else {
		var r, ss *big.Int
		r, ss, err = ecdsa.Sign(rand.Reader, s.ec, sum[:])
		sig = append(r.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
	}
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64url(sig)
}

// TestJWT runs catalog behind a RequestAuth with two issuers: one whose
// RS256 key is inline, one whose ES256 keys an HTTPS server of the test
// publishes (on loopback, its root given in the RequestAuth). /admin needs
// a token, the rest does not; a token sent anywhere must be valid. It
// checks each verdict through a real client proxy, the reasons in the
// replies and in catalog's log, a key rotation at the JWKS server, and
// that the proxy keeps its keys when the server goes away.
func TestJWT(t *testing.T) {
	rs := newJWTSigner(t, "rs-1", false)
	ec1 := newJWTSigner(t, "ec-1", true)
	ec2 := newJWTSigner(t, "ec-2", true)

	var published atomic.Pointer[string]
	keys := jwtKeySet(ec1)
	published.Store(&keys)
	var fetches atomic.Int32
	idp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(*published.Load()))
	}))
	t.Cleanup(idp.Close)
	idpRoot := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate().Raw})

	cp := startMeshControl(t)
	cp.apply(t, fmt.Sprintf(`
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog}
spec:
  ports: [{port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: RequestAuth
metadata: {name: catalog}
spec:
  issuers:
  - issuer: https://rs.test
    audiences: [catalog]
    jwks: '%s'
  - issuer: https://idp.test
    jwksUri: %s/.well-known/jwks.json
    jwksCacheDuration: 1s
    jwksCA: |
%s
  rules:
  - paths: [/admin]
    require: true
`, jwtKeySet(rs), idp.URL, indentLines(string(idpRoot), "      ")))

	// The app says whether a token reached it: the proxy strips a verified
	// token unless forwardToken is set.
	catalogIP := nextIP()
	app := startBackend(t, catalogIP, "catalog", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-backend", "catalog")
		w.Header().Set("x-saw-token", fmt.Sprint(r.Header.Get("Authorization") != ""))
		fmt.Fprintf(w, "catalog %s", r.URL.Path)
	}))
	catalog := startMeshSidecar(t, cp, sidecarOpts{service: "catalog", app: app.addr, ip: catalogIP}).waitReady(t)
	web := startMeshSidecar(t, cp, sidecarOpts{service: "web", upstreams: []string{"catalog"}}).waitReady(t)
	waitEndpoints(t, web, "catalog")
	base := "http://" + web.upstreams["catalog"]

	send := func(path, token string) result {
		if token == "" {
			return doGet(base + path)
		}
		return doGet(base+path, "Authorization", "Bearer "+token)
	}
	hour := time.Now().Add(time.Hour)
	valid := rs.mint(t, "https://rs.test", "catalog", hour, map[string]any{"group": "admins"})

	// The RequestAuth reaches catalog's proxy; until it does, /admin is open.
	eventually(t, 15*time.Second, "/admin to need a token", func() error {
		if r := send("/admin", ""); r.code != http.StatusUnauthorized {
			return fmt.Errorf("GET /admin without a token: %d %v", r.code, r.err)
		}
		return nil
	})

	tests := []struct {
		name, path, token string
		reason            string // "" for a 200
	}{
		{name: "RS256 valid", path: "/admin/users", token: valid},
		{name: "ES256 valid from the JWKS URL", path: "/admin", token: ec1.mint(t, "https://idp.test", "", hour, nil)},
		{name: "missing on a required path", path: "/admin", reason: "jwt_missing"},
		{name: "optional path without a token", path: "/products"},
		{name: "invalid signature", path: "/admin", token: newJWTSigner(t, "rs-1", false).mint(t, "https://rs.test", "catalog", hour, nil), reason: "jwt_invalid_signature"},
		{name: "invalid even on an optional path", path: "/products", token: valid[:len(valid)-4] + "AAAA", reason: "jwt_invalid_signature"},
		{name: "wrong issuer", path: "/admin", token: rs.mint(t, "https://evil.test", "catalog", hour, nil), reason: "jwt_wrong_issuer"},
		{name: "wrong audience", path: "/admin", token: rs.mint(t, "https://rs.test", "billing", hour, nil), reason: "jwt_wrong_audience"},
		{name: "expired", path: "/admin", token: rs.mint(t, "https://rs.test", "catalog", time.Now().Add(-10*time.Minute), nil), reason: "jwt_expired"},
	}
	for _, tt := range tests {
		r := send(tt.path, tt.token)
		if r.err != nil {
			t.Fatalf("%s: %v", tt.name, r.err)
		}
		if tt.reason == "" {
			if r.code != http.StatusOK || r.backend != "catalog" {
				t.Errorf("%s: %d %q (%s), want 200 from catalog", tt.name, r.code, r.header.Get("x-weft-error"), strings.TrimSpace(r.body))
			}
			if r.header.Get("x-saw-token") != "false" {
				t.Errorf("%s: the app saw the token (x-saw-token %q); it should be stripped", tt.name, r.header.Get("x-saw-token"))
			}
			continue
		}
		if r.code != http.StatusUnauthorized || r.header.Get("x-weft-error") != tt.reason {
			t.Errorf("%s: %d %q, want 401 %s", tt.name, r.code, r.header.Get("x-weft-error"), tt.reason)
		}
		want := `Bearer error="invalid_token", error_description="` + strings.TrimSpace(r.body) + `"`
		if tt.reason == "jwt_missing" {
			want = "Bearer" // RFC 6750: no error for a request without a token
		}
		if got := r.header.Get("www-authenticate"); got != want {
			t.Errorf("%s: www-authenticate %q, want %q", tt.name, got, want)
		}
		if r.backend != "" {
			t.Errorf("%s: the request reached %s", tt.name, r.backend)
		}
	}

	// Every refusal is in catalog's log with its reason.
	eventually(t, 5*time.Second, "the refusals in catalog's log", func() error {
		out := catalog.output()
		for _, tt := range tests {
			if tt.reason != "" && !strings.Contains(out, "reason="+tt.reason) {
				return fmt.Errorf("no refusal with reason %s logged", tt.reason)
			}
		}
		return nil
	})
	if !strings.Contains(catalog.output(), "filter=envoy.filters.http.jwt_authn") {
		t.Error("the refusals do not name the jwt filter")
	}

	// Rotation: the issuer now signs with ec-2 and publishes only it. A
	// token naming ec-2 makes the proxy fetch again (at most every 2s).
	rotated := jwtKeySet(ec2)
	published.Store(&rotated)
	fresh := ec2.mint(t, "https://idp.test", "", hour, nil)
	eventually(t, 10*time.Second, "the rotated key to be accepted", func() error {
		if r := send("/admin", fresh); r.code != http.StatusOK {
			return fmt.Errorf("%d %s", r.code, r.header.Get("x-weft-error"))
		}
		return nil
	})
	eventually(t, 10*time.Second, "the retired key to be refused", func() error {
		r := send("/admin", ec1.mint(t, "https://idp.test", "", hour, nil))
		if r.code != http.StatusUnauthorized || r.header.Get("x-weft-error") != "jwt_unknown_key" {
			return fmt.Errorf("%d %s", r.code, r.header.Get("x-weft-error"))
		}
		return nil
	})

	// The JWKS server goes away: past the 1s cache duration the proxy
	// fails to fetch, logs it, and keeps verifying with the keys it has.
	idp.Close()
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		tok := ec2.mint(t, "https://idp.test", "", hour, nil) // new each time: no cache
		if r := send("/admin", tok); r.code != http.StatusOK {
			t.Fatalf("with the JWKS server down: %d %s", r.code, r.header.Get("x-weft-error"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	eventually(t, 5*time.Second, "the failed fetch in catalog's log", func() error {
		if !strings.Contains(catalog.output(), "jwks fetch failed") {
			return fmt.Errorf("not logged")
		}
		return nil
	})
	if fetches.Load() < 2 {
		t.Errorf("the JWKS server answered %d fetches, want the first and the one after the rotation", fetches.Load())
	}
}

// indent prefixes every line of s.
func indentLines(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix)
}
