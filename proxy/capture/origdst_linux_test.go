//go:build linux

package capture

import (
	"net"
	"strings"
	"testing"
)

// A connection nobody redirected has no original destination (the error says
// so) or, when conntrack tracks loopback, its own destination.
func TestOriginalDstWithoutRedirect(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := OriginalDst(s)
	switch {
	case err != nil && !strings.Contains(err.Error(), "SO_ORIGINAL_DST"):
		t.Fatalf("OriginalDst error does not name the socket option: %v", err)
	case err == nil && got.String() != ln.Addr().String():
		t.Fatalf("OriginalDst = %s, want %s", got, ln.Addr())
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := OriginalDst(a); err == nil {
		t.Fatal("OriginalDst of a pipe succeeded")
	}
}
