//go:build linux || darwin || freebsd || netbsd || openbsd

package runtime

import "net"

// peekByte returns the first byte of a TCP connection without consuming
// it (MSG_PEEK), waiting for it until the connection's read deadline.
func peekByte(c net.Conn) (byte, error) {
	var b [1]byte
	if _, err := peekMore(c, b[:], 0); err != nil {
		return 0, err
	}
	return b[0], nil
}
