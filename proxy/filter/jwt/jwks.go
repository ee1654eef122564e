package jwt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// Bounds of a key set: far above what an issuer publishes, low enough that
// a hostile or broken server cannot make the proxy hold much.
const (
	maxJWKSBytes = 1 << 20
	maxJWKSKeys  = 256
	minRSABits   = 2048
	maxRSABits   = 8192
)

// key is a public key a token may be signed with.
type key struct {
	kid string
	alg string // RS256 or ES256
	rsa *rsa.PublicKey
	ec  *ecdsa.PublicKey
}

// keySet is a parsed JSON Web Key Set: the keys this proxy can verify
// with, in the set's order. It is immutable.
type keySet struct {
	keys []key
}

// find returns the keys a token of alg and kid may be checked with: the
// key of that kid, or, for a token without kid, every key of its alg.
func (s *keySet) find(alg, kid string, out []*key) []*key {
	if s == nil {
		return out
	}
	for i := range s.keys {
		k := &s.keys[i]
		if k.alg == alg && (kid == "" || k.kid == kid) {
			out = append(out, k)
		}
	}
	return out
}

// jwk is one key of a JWKS as JSON (RFC 7517, RFC 7518 section 6).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	// RSA
	N string `json:"n"`
	E string `json:"e"`
	// EC
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS parses a JSON Web Key Set. Keys this proxy cannot use for
// signatures (encryption keys, other algorithms or curves) are skipped, as
// Envoy skips them; a key that claims to be usable but is malformed is an
// error, and so is a set left with no key at all.
func parseJWKS(data []byte) (*keySet, error) {
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("key set is %d bytes, more than %d", len(data), maxJWKSBytes)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("key set is not JSON: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`key set has no "keys"`)
	}
	if len(doc.Keys) > maxJWKSKeys {
		return nil, fmt.Errorf("key set has %d keys, more than %d", len(doc.Keys), maxJWKSKeys)
	}
	s := &keySet{}
	for i, raw := range doc.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, ok, err := j.key()
		if err != nil {
			return nil, fmt.Errorf("keys[%d] (kid %q): %w", i, j.Kid, err)
		}
		if ok {
			s.keys = append(s.keys, k)
		}
	}
	if len(s.keys) == 0 {
		return nil, errors.New("key set has no RS256 or ES256 (P-256) signing key")
	}
	return s, nil
}

// key converts j; ok is false for a key of a type or algorithm the proxy
// does not verify with.
func (j *jwk) key() (k key, ok bool, err error) {
	k.kid = j.Kid
	switch j.Kty {
	case "RSA":
		if j.Alg != "" && j.Alg != algRS256 {
			return k, false, nil
		}
		k.alg = algRS256
		n, err := decodeBigInt(j.N)
		if err != nil {
			return k, false, fmt.Errorf("n: %w", err)
		}
		e, err := decodeBigInt(j.E)
		if err != nil {
			return k, false, fmt.Errorf("e: %w", err)
		}
		if bits := n.BitLen(); bits < minRSABits || bits > maxRSABits {
			return k, false, fmt.Errorf("RSA modulus of %d bits: want %d to %d", bits, minRSABits, maxRSABits)
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return k, false, errors.New("RSA exponent is not an odd number from 3 to 2^31-1")
		}
		k.rsa = &rsa.PublicKey{N: n, E: int(e.Int64())}
		return k, true, nil
	case "EC":
		if (j.Alg != "" && j.Alg != algES256) || j.Crv != "P-256" {
			return k, false, nil
		}
		k.alg = algES256
		x, err := decodeFixed(j.X, 32)
		if err != nil {
			return k, false, fmt.Errorf("x: %w", err)
		}
		y, err := decodeFixed(j.Y, 32)
		if err != nil {
			return k, false, fmt.Errorf("y: %w", err)
		}
		// The uncompressed point encoding: ParseUncompressedPublicKey
		// checks that it is on the curve.
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return k, false, fmt.Errorf("not a P-256 point: %w", err)
		}
		k.ec = pub
		return k, true, nil
	}
	return k, false, nil
}

func decodeBigInt(s string) (*big.Int, error) {
	if s == "" {
		return nil, errors.New("is missing")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("is not base64url")
	}
	return new(big.Int).SetBytes(b), nil
}

func decodeFixed(s string, n int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	switch {
	case s == "":
		return nil, errors.New("is missing")
	case err != nil:
		return nil, errors.New("is not base64url")
	case len(b) != n:
		return nil, fmt.Errorf("is %d bytes, want %d", len(b), n)
	}
	return b, nil
}
