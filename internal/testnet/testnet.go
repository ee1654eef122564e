// Package testnet gives tests real loopback sockets: unlike net.Pipe, a
// TCP connection has socket buffers, so a small write does not wait for
// the reader, and deadlines, half-closes and splice behave as in the proxy.
package testnet

import (
	"net"
	"testing"
)

// TCPPair returns the two ends of a loopback TCP connection, the dialled
// one first. Both are closed when the test ends.
func TCPPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}
