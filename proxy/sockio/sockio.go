// Package sockio reads and writes the proxy's HTTP sockets without the Go
// scheduler's system-call bookkeeping.
//
// A read or write on a net.Conn enters the runtime's syscall state: with one
// P (the proxy's default worker count per core), the runtime's sysmon thread
// wakes from its deep sleep on the first such call after an idle moment and
// then ticks every 20 µs, retaking the P from any call it finds in progress.
// On a socket that never blocks (the runtime's sockets are non-blocking) that
// costs thread wake-ups and nothing else, and at a thousand requests a second
// it was a quarter of a proxy's CPU time. A Conn issues the same read(2) and
// write(2) calls as raw system calls, inside the runtime poller's RawConn
// callbacks, so waiting for readiness, deadlines and Close behave as before.
package sockio

import "net"

// Wrap returns c reading and writing through raw system calls when c is a
// TCP socket on a platform that has them, and c itself otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	return wrap(tc)
}

// Socket returns the TCP socket of c, a *net.TCPConn or a wrapper that
// exposes its socket (for zero-copy forwarding), or nil.
func Socket(c net.Conn) *net.TCPConn {
	switch c := c.(type) {
	case *net.TCPConn:
		return c
	case interface{ Socket() *net.TCPConn }:
		return c.Socket()
	}
	return nil
}
