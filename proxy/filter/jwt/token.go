package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"time"
)

// The signature algorithms the proxy verifies (RFC 7518 section 3).
const (
	algRS256 = "RS256"
	algES256 = "ES256"
)

// maxTokenBytes bounds a token: far above any real one, so that parsing a
// hostile header costs little.
const maxTokenBytes = 16 << 10

// token is a parsed JSON Web Token in JWS compact serialisation whose
// signature has not been checked yet.
type token struct {
	alg, kid string
	// signed is the JWS signing input: header.payload, still encoded.
	signed string
	sig    []byte
	claims map[string]any

	iss       string
	aud       []string
	exp, nbf  float64
	hasExp    bool
	hasNbf    bool
	malformed bool // a registered claim of the wrong type
}

// parseToken splits and decodes a compact JWS. It checks its form, not its
// signature.
func parseToken(raw string) (*token, *failure) {
	if len(raw) > maxTokenBytes {
		return nil, errMalformed
	}
	h, rest, ok1 := strings.Cut(raw, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(s, '.') >= 0 {
		return nil, errMalformed
	}
	var header struct {
		Alg  string          `json:"alg"`
		Kid  string          `json:"kid"`
		Crit json.RawMessage `json:"crit"`
	}
	if !decodeJSON(h, &header) {
		return nil, errMalformed
	}
	if header.Crit != nil {
		// RFC 7515 section 4.1.11: an extension the recipient does not
		// understand makes the token invalid.
		return nil, errUnsupportedAlg
	}
	if header.Alg != algRS256 && header.Alg != algES256 {
		return nil, errUnsupportedAlg
	}
	t := &token{alg: header.Alg, kid: header.Kid, signed: raw[:len(h)+1+len(p)]}
	var claims map[string]any
	if !decodeJSON(p, &claims) || claims == nil {
		return nil, errMalformed
	}
	t.claims = claims
	sig, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(sig) == 0 {
		return nil, errMalformed
	}
	t.sig = sig
	if !t.readRegistered() {
		return nil, errMalformed
	}
	return t, nil
}

// decodeJSON decodes one base64url segment holding a JSON object into v.
func decodeJSON(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil || len(b) == 0 || b[0] != '{' {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

// readRegistered reads iss, aud, exp and nbf (RFC 7519 section 4.1),
// reporting whether each that is present has its type.
func (t *token) readRegistered() bool {
	if v, ok := t.claims["iss"]; ok {
		s, isStr := v.(string)
		if !isStr {
			return false
		}
		t.iss = s
	}
	switch v := t.claims["aud"].(type) {
	case nil:
	case string:
		t.aud = []string{v}
	case []any:
		t.aud = make([]string, 0, len(v))
		for _, a := range v {
			s, ok := a.(string)
			if !ok {
				return false
			}
			t.aud = append(t.aud, s)
		}
	default:
		return false
	}
	var ok bool
	if t.exp, t.hasExp, ok = numericDate(t.claims, "exp"); !ok {
		return false
	}
	if t.nbf, t.hasNbf, ok = numericDate(t.claims, "nbf"); !ok {
		return false
	}
	return true
}

// numericDate reads a NumericDate claim: seconds since the epoch.
func numericDate(claims map[string]any, name string) (v float64, present, ok bool) {
	raw, present := claims[name]
	if !present {
		return 0, false, true
	}
	f, isNum := raw.(float64)
	if !isNum || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, true, false
	}
	return f, true, true
}

// verify checks the signature with k.
func (t *token) verify(k *key) bool {
	sum := sha256.Sum256([]byte(t.signed))
	switch {
	case t.alg == algRS256 && k.rsa != nil:
		return rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, sum[:], t.sig) == nil
	case t.alg == algES256 && k.ec != nil:
		// JWS ES256 signatures are r||s, 32 bytes each (RFC 7518
		// section 3.4), not ASN.1.
		if len(t.sig) != 64 {
			return false
		}
		r := new(big.Int).SetBytes(t.sig[:32])
		s := new(big.Int).SetBytes(t.sig[32:])
		return ecdsa.Verify(k.ec, sum[:], r, s)
	}
	return false
}

// checkTime checks exp and nbf at now, allowing skew either way.
func (t *token) checkTime(now time.Time, skew time.Duration) *failure {
	sec := float64(now.UnixNano()) / 1e9
	slack := skew.Seconds()
	if t.hasExp && sec > t.exp+slack {
		return errExpired
	}
	if t.hasNbf && sec+slack < t.nbf {
		return errNotYetValid
	}
	return nil
}

// expiry is when the token stops being accepted, or the zero time when it
// has no exp.
func (t *token) expiry(skew time.Duration) time.Time {
	if !t.hasExp {
		return time.Time{}
	}
	const maxSec = math.MaxInt64 / int64(time.Second)
	switch at := t.exp + skew.Seconds(); {
	case at >= float64(maxSec):
		return time.Unix(maxSec, 0)
	case at <= 0:
		return time.Unix(0, 0)
	default:
		return time.Unix(0, int64(at*1e9))
	}
}
