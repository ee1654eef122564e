//go:build linux || darwin || freebsd || netbsd || openbsd

package runtime

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// peekMore peeks at the start of a TCP connection without consuming it
// (MSG_PEEK), into buf, and returns once more than have bytes are there
// (or buf is full), or at the connection's read deadline. A client that
// closed its side before sending anything returns io.EOF; one that closes
// after a few bytes leaves the wait to the deadline.
func peekMore(c net.Conn, buf []byte, have int) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, errors.New("protocol detection needs a TCP socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var perr error
	err = raw.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK)
		switch {
		case perr == syscall.EAGAIN || perr == syscall.EINTR:
			return false // not readable yet: wait for the poller (and the deadline)
		case perr != nil:
			return true
		case n == have && n > 0 && n < len(buf):
			// Nothing new since the last peek: the poller wakes us when
			// more arrives (its notifications are edge-triggered).
			return false
		}
		return true
	})
	switch {
	case err != nil:
		return have, err
	case perr != nil:
		return have, perr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
