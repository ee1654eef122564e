package token

import (
	"crypto/rand"
	"encoding/hex"
)

const (
	idBytes      = 16 // join token IDs: 128 random bits
	adminIDBytes = 8  // admin credential IDs: only name the record; the secret is apart
)

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// validID reports whether s is a join token ID as randomHex makes them.
func validID(s string) bool { return isHex(s, idBytes) }

func isHex(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validLabel reports whether s is an RFC 1123 DNS label, as service and
// namespace names are: lowercase letters, digits and '-', 1 to 63
// characters, starting and ending with an alphanumeric.
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
