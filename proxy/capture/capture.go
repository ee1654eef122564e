// Package capture sends a pod's TCP through its proxy without the app's
// knowledge: it builds and applies the iptables NAT rules of transparent mode
// (as istio-init does) and reads a redirected connection's original
// destination (SO_ORIGINAL_DST). IPv4 only.
package capture

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Default ports of transparent mode, as the translator and the proxy use them.
const (
	DefaultOutboundPort = 15001 // every outbound TCP connection of the pod
	DefaultInboundPort  = 15006 // every inbound TCP connection of the pod
	DefaultDNSPort      = 15053 // the proxy's DNS resolver (UDP and TCP)
	DefaultProxyUID     = 1337  // as Istio: the uid the proxy runs as
)

// Chains are the NAT chains capture owns; nothing else is touched except the
// jumps to them from PREROUTING and OUTPUT.
const (
	ChainInbound    = "WEFT_INBOUND"     // PREROUTING -p tcp jumps here
	ChainInRedirect = "WEFT_IN_REDIRECT" // REDIRECT to the inbound port
	ChainOutbound   = "WEFT_OUTBOUND"    // OUTPUT -p tcp jumps here
	ChainRedirect   = "WEFT_REDIRECT"    // REDIRECT to the outbound port
	ChainDNS        = "WEFT_DNS"         // OUTPUT udp/tcp port 53 jumps here
)

// chainPrefix marks every chain capture owns.
const chainPrefix = "WEFT_"

// Config is what `weft proxy iptables` installs.
type Config struct {
	OutboundPort int // default DefaultOutboundPort
	InboundPort  int // default DefaultInboundPort
	DNSPort      int // default DefaultDNSPort; used only with CaptureDNS

	// The proxy's own traffic is never captured: connections opened by a
	// process with one of these uids or gids, or carrying this mark.
	ProxyUIDs []int
	ProxyGIDs []int
	ProxyMark uint32 // 0: none

	ExcludeOutboundPorts []int          // destination ports left alone on the way out
	ExcludeInboundPorts  []int          // local ports left alone on the way in (ssh, the proxy's admin...)
	ExcludeOutboundCIDRs []netip.Prefix // destinations left alone on the way out

	CaptureDNS bool // UDP and TCP port 53 to DNSPort
}

// WithDefaults fills the zero ports.
func (c Config) WithDefaults() Config {
	if c.OutboundPort == 0 {
		c.OutboundPort = DefaultOutboundPort
	}
	if c.InboundPort == 0 {
		c.InboundPort = DefaultInboundPort
	}
	if c.DNSPort == 0 {
		c.DNSPort = DefaultDNSPort
	}
	return c
}

// Validate says what is wrong with a config with its defaults applied.
func (c Config) Validate() error {
	for _, p := range []struct {
		name string
		v    int
	}{{"outbound port", c.OutboundPort}, {"inbound port", c.InboundPort}, {"dns port", c.DNSPort}} {
		if p.v < 1 || p.v > 65535 {
			return fmt.Errorf("capture: %s %d: must be 1-65535", p.name, p.v)
		}
	}
	if len(c.ProxyUIDs) == 0 && len(c.ProxyGIDs) == 0 && c.ProxyMark == 0 {
		return fmt.Errorf("capture: no proxy uid, gid or mark: the proxy's own connections would be captured again, in a loop")
	}
	for _, id := range append(append([]int(nil), c.ProxyUIDs...), c.ProxyGIDs...) {
		if id < 0 {
			return fmt.Errorf("capture: proxy uid/gid %d: must not be negative", id)
		}
	}
	for _, p := range append(append([]int(nil), c.ExcludeOutboundPorts...), c.ExcludeInboundPorts...) {
		if p < 1 || p > 65535 {
			return fmt.Errorf("capture: excluded port %d: must be 1-65535", p)
		}
	}
	for _, p := range c.ExcludeOutboundCIDRs {
		if !p.Addr().Is4() {
			return fmt.Errorf("capture: excluded CIDR %s: only IPv4 is captured", p)
		}
	}
	return nil
}

// ParsePorts parses a comma-separated list of ports ("22,15090"); empty is none.
func ParsePorts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q: must be a number 1-65535", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseIDs parses a comma-separated list of uids or gids; empty is none.
func ParseIDs(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.ParseUint(f, 10, 31)
		if err != nil {
			return nil, fmt.Errorf("id %q: must be a non-negative number", f)
		}
		out = append(out, int(n))
	}
	return out, nil
}

// ParseCIDRs parses a comma-separated list of IPv4 CIDRs ("10.0.0.0/8,169.254.169.254/32");
// a bare address is a /32.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range splitList(s) {
		var p netip.Prefix
		var err error
		if strings.Contains(f, "/") {
			p, err = netip.ParsePrefix(f)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(f)
			if err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("CIDR %q: %w", f, err)
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("CIDR %q: only IPv4 is captured", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
