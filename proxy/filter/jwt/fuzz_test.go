package jwt

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseToken: parsing any header value never panics, and a token it
// accepts has a supported alg, claims, its signing input as a prefix of
// the raw token, and a time window that can be checked.
func FuzzParseToken(f *testing.F) {
	rs, ec := newRSASigner(f, "rs"), newECSigner(f, "ec")
	f.Add(rs.mint(f, map[string]any{"iss": "a", "aud": []string{"x", "y"}, "exp": 1.5e9, "nbf": 1}))
	f.Add(ec.mint(f, map[string]any{"iss": "b", "aud": "x", "group": map[string]any{"k": []any{1, "v"}}}))
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJhIn0.")
	f.Add("a.b.c")
	f.Add("..")
	f.Add(b64([]byte(`{"alg":"RS256","crit":["exp"]}`)) + "." + b64([]byte(`{}`)) + ".AA")
	f.Add(b64([]byte(`{"alg":"ES256"}`)) + "." + b64([]byte(`{"exp":1e400}`)) + ".AA")
	keys := []*key{}
	for _, s := range []*signer{rs, ec} {
		ks, err := parseJWKS([]byte(jwks(s)))
		if err != nil {
			f.Fatal(err)
		}
		keys = append(keys, &ks.keys[0])
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, fail := parseToken(raw)
		if fail != nil {
			if tok != nil {
				t.Fatal("a token and a failure")
			}
			return
		}
		if tok.alg != algRS256 && tok.alg != algES256 {
			t.Fatalf("accepted alg %q", tok.alg)
		}
		if tok.claims == nil || !strings.HasPrefix(raw, tok.signed+".") {
			t.Fatalf("accepted token without claims or signing input: %+v", tok)
		}
		for _, k := range keys {
			tok.verify(k)
		}
		_ = tok.checkTime(time.Now(), defaultClockSkew)
		_ = tok.expiry(defaultClockSkew)
	})
}

// FuzzParseJWKS: parsing any key set never panics, and a set it accepts
// holds only keys the proxy can verify with.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(jwks(newRSASigner(f, "rs"), newECSigner(f, "ec"))))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-384","x":"AA","y":"AA"},{"kty":"oct","k":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ks, err := parseJWKS(data)
		if err != nil {
			return
		}
		if len(ks.keys) == 0 {
			t.Fatal("accepted a set without keys")
		}
		for _, k := range ks.keys {
			switch {
			case k.alg == algRS256 && k.rsa != nil && k.rsa.N.BitLen() >= minRSABits:
			case k.alg == algES256 && k.ec != nil:
			default:
				t.Fatalf("accepted key %+v", k)
			}
		}
	})
}
