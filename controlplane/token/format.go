package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// prefix names the token format: weft1.<claims>.<signature>, where claims is
// base64url JSON and signature is Ed25519 over "weft1.<claims>". A later
// format gets a new prefix so both can be told apart.
const prefix = "weft1."

// maxTokenSize bounds the work an unauthenticated caller can cause; real
// tokens are under 300 bytes.
const maxTokenSize = 2048

// b64 is strict so that every token and secret has exactly one spelling.
var b64 = base64.RawURLEncoding.Strict()

// Claims are what a join token says about its bearer.
type Claims struct {
	ID        string    // jti: names the token's record in the store
	Service   string    // svc
	Namespace string    // ns
	IssuedAt  time.Time // iat
	ExpiresAt time.Time // exp
}

// wireClaims is Claims as encoded in a token, with times in Unix seconds.
type wireClaims struct {
	ID        string `json:"jti"`
	Service   string `json:"svc"`
	Namespace string `json:"ns"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
}

// encode signs claims into a token.
func encode(c Claims, key ed25519.PrivateKey) (string, error) {
	payload, err := json.Marshal(wireClaims{
		ID:        c.ID,
		Service:   c.Service,
		Namespace: c.Namespace,
		IssuedAt:  c.IssuedAt.Unix(),
		ExpiresAt: c.ExpiresAt.Unix(),
	})
	if err != nil {
		return "", fmt.Errorf("token: encode claims: %w", err)
	}
	signed := prefix + b64.EncodeToString(payload)
	return signed + "." + b64.EncodeToString(ed25519.Sign(key, []byte(signed))), nil
}

// decode checks a token's shape and signature and returns its claims. It says
// what is wrong without ever repeating the token, which is a secret.
func decode(token string, pub ed25519.PublicKey) (Claims, error) {
	if len(token) > maxTokenSize {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxTokenSize)
	}
	rest, ok := strings.CutPrefix(token, prefix)
	if !ok {
		return Claims{}, fmt.Errorf("%w: does not start with %q", ErrMalformed, prefix)
	}
	payloadB64, sigB64, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sigB64, ".") {
		return Claims{}, fmt.Errorf("%w: want %s<claims>.<signature>", ErrMalformed, prefix)
	}
	sig, err := b64.DecodeString(sigB64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Claims{}, fmt.Errorf("%w: signature is not %d bytes of base64url", ErrMalformed, ed25519.SignatureSize)
	}
	payload, err := b64.DecodeString(payloadB64)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: claims are not base64url", ErrMalformed)
	}
	// Verify before parsing: nothing unsigned is interpreted.
	if !ed25519.Verify(pub, []byte(prefix+payloadB64), sig) {
		return Claims{}, ErrBadSignature
	}
	var w wireClaims
	if err := json.Unmarshal(payload, &w); err != nil {
		// Signed by us yet unreadable: a bug, not an attack; say so.
		return Claims{}, fmt.Errorf("%w: claims are not JSON: %w", ErrMalformed, err)
	}
	c := Claims{
		ID:        w.ID,
		Service:   w.Service,
		Namespace: w.Namespace,
		IssuedAt:  time.Unix(w.IssuedAt, 0),
		ExpiresAt: time.Unix(w.ExpiresAt, 0),
	}
	if !validID(c.ID) || c.Service == "" || c.Namespace == "" || w.IssuedAt == 0 || w.ExpiresAt == 0 {
		return Claims{}, fmt.Errorf("%w: claims are incomplete", ErrMalformed)
	}
	return c, nil
}

// ErrInvalid is wrapped by every error that means a join token itself is bad,
// as opposed to the store being unreachable; callers map it to
// "unauthenticated".
var ErrInvalid = errors.New("invalid join token")

// The ways a join token can be bad. Each wraps ErrInvalid.
var (
	ErrMalformed    = fmt.Errorf("%w: malformed", ErrInvalid)
	ErrBadSignature = fmt.Errorf("%w: signature does not verify (was it issued by another control plane?)", ErrInvalid)
	ErrExpired      = fmt.Errorf("%w: expired", ErrInvalid)
	ErrRevoked      = fmt.Errorf("%w: unknown or revoked", ErrInvalid)
)
