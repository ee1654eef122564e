//go:build linux

package capture

import (
	"net"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/testnet"
)

// A connection nobody redirected has no original destination (the error says
// so) or, when conntrack tracks loopback, its own destination.
func TestOriginalDstWithoutRedirect(t *testing.T) {
	_, s := testnet.TCPPair(t)
	got, err := OriginalDst(s)
	switch {
	case err != nil && !strings.Contains(err.Error(), "SO_ORIGINAL_DST"):
		t.Fatalf("OriginalDst error does not name the socket option: %v", err)
	case err == nil && got.String() != s.LocalAddr().String():
		t.Fatalf("OriginalDst = %s, want %s", got, s.LocalAddr())
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := OriginalDst(a); err == nil {
		t.Fatal("OriginalDst of a pipe succeeded")
	}
}
