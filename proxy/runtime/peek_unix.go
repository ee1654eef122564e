//go:build linux || darwin || freebsd || netbsd || openbsd

package runtime

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// peekByte returns the first byte of a TCP connection without consuming
// it (MSG_PEEK), waiting for it until the connection's read deadline.
func peekByte(c net.Conn) (byte, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, errors.New("tls inspection needs a TCP socket")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var b [1]byte
	var n int
	var perr error
	err = raw.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		// Not readable yet: wait for the poller (and the deadline).
		return perr != syscall.EAGAIN && perr != syscall.EINTR
	})
	switch {
	case err != nil:
		return 0, err
	case perr != nil:
		return 0, perr
	case n == 0:
		return 0, io.EOF
	}
	return b[0], nil
}
