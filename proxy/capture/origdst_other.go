//go:build !linux

package capture

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
)

// OriginalDst needs Linux netfilter (SO_ORIGINAL_DST).
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	return netip.AddrPort{}, fmt.Errorf("capture: original destination: transparent capture needs Linux (SO_ORIGINAL_DST), not %s", runtime.GOOS)
}
