//go:build !linux

package sockio

import "net"

func wrap(c *net.TCPConn) net.Conn { return c }
