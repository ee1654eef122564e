package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeRefusesOtherSpellings(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	valid, err := encode(Claims{ID: randomHex(idBytes), Service: "payments", Namespace: "default",
		IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decode(valid, pub); err != nil {
		t.Fatal(err)
	}
	// The last character of a 64-byte signature carries 2 bits and 4 unused
	// ones; a lenient decoder would read the same signature.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, valid[len(valid)-1])
	respelt := valid[:len(valid)-1] + string(alphabet[last^1])
	if _, err := decode(respelt, pub); !errors.Is(err, ErrMalformed) {
		t.Errorf("decode of a respelt signature = %v, want ErrMalformed", err)
	}
}

// FuzzDecode feeds decode what a network caller could send: it must never
// panic, and must accept nothing it did not sign.
func FuzzDecode(f *testing.F) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	valid, err := encode(Claims{ID: randomHex(idBytes), Service: "payments", Namespace: "default",
		IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, key)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{valid, "", "weft1.", "weft1..", "weft1.e30.", valid + "."} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := decode(token, pub)
		if err == nil && token != valid {
			t.Fatalf("accepted a token it did not issue: %+v", c)
		}
	})
}

// FuzzParseAdmin checks that admin credential parsing never panics and only
// yields IDs that are safe inside a store key.
func FuzzParseAdmin(f *testing.F) {
	for _, seed := range []string{"", "weftadm_", "weftadm_0123456789abcdef_", "weftadm_0123456789abcdef_" + b64.EncodeToString(make([]byte, 32))} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, credential string) {
		id, secret, err := parseAdmin(credential)
		if err == nil && (!isHex(id, adminIDBytes) || len(secret) != adminSecretBytes) {
			t.Fatalf("parseAdmin(%q) = %q, %d-byte secret", credential, id, len(secret))
		}
	})
}
