package dns

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// ResolvConf is where the pod's own resolvers are listed.
const ResolvConf = "/etc/resolv.conf"

// ReadResolvConf returns the nameservers of a resolv.conf file as ip:port
// (port 53), in order.
func ReadResolvConf(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dns: read %s: %w", path, err)
	}
	return ParseResolvConf(b), nil
}

// ParseResolvConf returns the nameservers of resolv.conf content as ip:port
// (port 53), in order; lines it cannot read are skipped, as libc does.
func ParseResolvConf(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		out = append(out, netip.AddrPortFrom(a, 53).String())
	}
	return out
}
