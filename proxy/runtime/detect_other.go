//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package runtime

import (
	"errors"
	"net"
)

// peekMore is not implemented here: a listener that detects protocols
// refuses every connection rather than guess.
func peekMore(net.Conn, []byte, int) (int, error) {
	return 0, errors.New("protocol detection is not supported on this platform")
}
