//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package runtime

import (
	"errors"
	"net"
)

// peekByte is not implemented here: a PERMISSIVE listener refuses every
// connection rather than guess its transport.
func peekByte(net.Conn) (byte, error) {
	return 0, errors.New("tls inspection is not supported on this platform")
}
