package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"
)

// signer mints tokens for tests, with an RSA or P-256 key.
type signer struct {
	kid string
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

func newRSASigner(t testing.TB, kid string) *signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{kid: kid, rsa: k}
}

func newECSigner(t testing.TB, kid string) *signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{kid: kid, ec: k}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwk is the signer's public key as a JWKS entry.
func (s *signer) jwk() string {
	if s.rsa != nil {
		return fmt.Sprintf(`{"kty":"RSA","kid":%q,"alg":"RS256","use":"sig","n":%q,"e":%q}`,
			s.kid, b64(s.rsa.N.Bytes()), b64(big.NewInt(int64(s.rsa.E)).Bytes()))
	}
	return fmt.Sprintf(`{"kty":"EC","kid":%q,"crv":"P-256","x":%q,"y":%q}`,
		s.kid, b64(s.ec.X.FillBytes(make([]byte, 32))), b64(s.ec.Y.FillBytes(make([]byte, 32))))
}

func jwks(signers ...*signer) string {
	keys := make([]string, len(signers))
	for i, s := range signers {
		keys[i] = s.jwk()
	}
	return `{"keys":[` + strings.Join(keys, ",") + `]}`
}

// mint signs claims.
func (s *signer) mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	alg := "ES256"
	if s.rsa != nil {
		alg = "RS256"
	}
	h, _ := json.Marshal(map[string]string{"alg": alg, "kid": s.kid, "typ": "JWT"})
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signed := b64(h) + "." + b64(p)
	sum := sha256.Sum256([]byte(signed))
	var sig []byte
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
	return signed + "." + b64(sig)
}
