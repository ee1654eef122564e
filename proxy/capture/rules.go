package capture

import (
	"bufio"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// natState is what capture owns in the live NAT table: its chains and the
// jumps to them from the built-in chains, each as iptables-save prints it.
type natState struct {
	chains []string // WEFT_* chains that exist
	jumps  []string // "-A PREROUTING ... -j WEFT_INBOUND" and the like
}

// parseNATSave reads `iptables-save -t nat` output and keeps what capture owns.
func parseNATSave(save string) (natState, error) {
	var st natState
	inNAT := false
	sc := bufio.NewScanner(strings.NewReader(save))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			inNAT = line == "*nat"
		case !inNAT:
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if strings.HasPrefix(name, chainPrefix) {
				st.chains = append(st.chains, name)
			}
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if len(f) < 2 {
				return natState{}, fmt.Errorf("iptables-save: rule without a chain: %q", line)
			}
			if strings.HasPrefix(f[1], chainPrefix) {
				continue // our own chains are flushed whole
			}
			for i := 0; i+1 < len(f); i++ {
				if (f[i] == "-j" || f[i] == "-g") && strings.HasPrefix(f[i+1], chainPrefix) {
					st.jumps = append(st.jumps, line)
					break
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return natState{}, fmt.Errorf("iptables-save: %w", err)
	}
	return st, nil
}

// removal returns the restore lines that delete what capture owns: the
// jumps first, then the chains' rules, then the chains.
func (st natState) removal() []string {
	var out []string
	for _, j := range st.jumps {
		out = append(out, "-D"+strings.TrimPrefix(j, "-A"))
	}
	chains := append([]string(nil), st.chains...)
	sort.Strings(chains)
	for _, c := range chains {
		out = append(out, "-F "+c)
	}
	for _, c := range chains {
		out = append(out, "-X "+c)
	}
	return out
}

// InstallScript is the iptables-restore --noflush input that takes the NAT
// table from the state in save (iptables-save -t nat output, "" if none) to
// exactly the rules of c: whatever capture installed before is removed in the
// same transaction, so running it again converges and never duplicates.
func InstallScript(c Config, save string) (string, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return "", err
	}
	st, err := parseNATSave(save)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, l := range st.removal() {
		b.WriteString(l + "\n")
	}
	chains := []string{ChainInbound, ChainInRedirect, ChainOutbound, ChainRedirect}
	if c.CaptureDNS {
		chains = append(chains, ChainDNS)
	}
	for _, ch := range chains {
		fmt.Fprintf(&b, ":%s - [0:0]\n", ch)
	}
	for _, r := range rules(c) {
		b.WriteString(r + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String(), nil
}

// CleanupScript is the iptables-restore --noflush input that removes exactly
// what capture installed, or "" when there is nothing to remove.
func CleanupScript(save string) (string, error) {
	st, err := parseNATSave(save)
	if err != nil {
		return "", err
	}
	lines := st.removal()
	if len(lines) == 0 {
		return "", nil
	}
	return "*nat\n" + strings.Join(lines, "\n") + "\nCOMMIT\n", nil
}

// rules are the "-A" lines of c, in order.
func rules(c Config) []string {
	var r []string
	add := func(format string, a ...any) { r = append(r, fmt.Sprintf(format, a...)) }
	excludeProxy := func(chain string) {
		for _, uid := range c.ProxyUIDs {
			add("-A %s -m owner --uid-owner %d -j RETURN", chain, uid)
		}
		for _, gid := range c.ProxyGIDs {
			add("-A %s -m owner --gid-owner %d -j RETURN", chain, gid)
		}
		if c.ProxyMark != 0 {
			add("-A %s -m mark --mark %s -j RETURN", chain, markString(c.ProxyMark))
		}
	}

	// Inbound: every TCP connection arriving from outside the pod, except
	// the excluded ports, goes to the inbound capture port.
	add("-A %s -p tcp -j REDIRECT --to-ports %d", ChainInRedirect, c.InboundPort)
	for _, p := range c.ExcludeInboundPorts {
		add("-A %s -p tcp --dport %d -j RETURN", ChainInbound, p)
	}
	add("-A %s -p tcp -j %s", ChainInbound, ChainInRedirect)

	// Outbound: every TCP connection the pod opens, except the proxy's own,
	// loopback ones and the excluded destinations.
	add("-A %s -p tcp -j REDIRECT --to-ports %d", ChainRedirect, c.OutboundPort)
	excludeProxy(ChainOutbound)
	add("-A %s -o lo -j RETURN", ChainOutbound)
	add("-A %s -d 127.0.0.0/8 -j RETURN", ChainOutbound)
	for _, p := range c.ExcludeOutboundCIDRs {
		add("-A %s -d %s -j RETURN", ChainOutbound, p)
	}
	for _, p := range c.ExcludeOutboundPorts {
		add("-A %s -p tcp --dport %d -j RETURN", ChainOutbound, p)
	}
	add("-A %s -p tcp -j %s", ChainOutbound, ChainRedirect)

	// DNS: every query of the app, wherever it was going (a loopback stub
	// resolver included), to the proxy's resolver; the proxy's own queries
	// upstream pass.
	if c.CaptureDNS {
		excludeProxy(ChainDNS)
		add("-A %s -p udp --dport 53 -j REDIRECT --to-ports %d", ChainDNS, c.DNSPort)
		add("-A %s -p tcp --dport 53 -j REDIRECT --to-ports %d", ChainDNS, c.DNSPort)
		add("-A OUTPUT -p udp --dport 53 -j %s", ChainDNS)
		add("-A OUTPUT -p tcp --dport 53 -j %s", ChainDNS)
	}
	add("-A PREROUTING -p tcp -j %s", ChainInbound)
	add("-A OUTPUT -p tcp -j %s", ChainOutbound)
	return r
}

func markString(m uint32) string { return "0x" + strconv.FormatUint(uint64(m), 16) }
