package proxycmd

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/weftmesh/weft/proxy/capture"
)

// iptablesCommand is `weft proxy iptables`: the NAT rules of transparent mode,
// applied in the pod's network namespace before the app starts.
func iptablesCommand() *Command {
	var (
		c                                 capture.Config
		uids, gids, mark                  string
		exOutPorts, exInPorts, exOutCIDRs string
		cleanup, dryRun                   bool
	)
	cmd := &Command{
		Use:   "iptables [--proxy-uid UID] [--capture-dns] [--cleanup] [--dry-run]",
		Short: "Send the pod's TCP through its proxy (NAT rules, like istio-init)",
		Long: `Install, in the current network namespace, the NAT rules of transparent mode:
every outbound TCP connection goes to the proxy's outbound port (15001), every
inbound one to its inbound port (15006), and with --capture-dns every DNS query
(UDP and TCP port 53) to its resolver (15053). The proxy's own connections are
left alone by uid, gid or mark. The rules live in their own chains (WEFT_*),
applied in one iptables-restore transaction: running it again converges, and
--cleanup removes exactly what it added. IPv4 only.`,
		Flags: pflag.NewFlagSet("iptables", pflag.ContinueOnError),
		Run: func(ctx context.Context, stdout, _ io.Writer) error {
			var err error
			ipt := capture.IPTables{}
			if cleanup {
				save, err := ipt.CurrentNAT(ctx)
				if err != nil {
					return err
				}
				script, err := capture.CleanupScript(save)
				if err != nil || script == "" {
					return err
				}
				return applyOrPrint(ctx, stdout, ipt, script, dryRun)
			}
			if c.ProxyUIDs, err = capture.ParseIDs(uids); err != nil {
				return fmt.Errorf("--proxy-uid: %w", err)
			}
			if c.ProxyGIDs, err = capture.ParseIDs(gids); err != nil {
				return fmt.Errorf("--proxy-gid: %w", err)
			}
			if mark != "" {
				m, err := strconv.ParseUint(mark, 0, 32)
				if err != nil {
					return fmt.Errorf("--proxy-mark %q: must be a 32-bit number (1337 or 0x539)", mark)
				}
				c.ProxyMark = uint32(m)
			}
			if c.ExcludeOutboundPorts, err = capture.ParsePorts(exOutPorts); err != nil {
				return fmt.Errorf("--exclude-outbound-ports: %w", err)
			}
			if c.ExcludeInboundPorts, err = capture.ParsePorts(exInPorts); err != nil {
				return fmt.Errorf("--exclude-inbound-ports: %w", err)
			}
			if c.ExcludeOutboundCIDRs, err = capture.ParseCIDRs(exOutCIDRs); err != nil {
				return fmt.Errorf("--exclude-outbound-cidrs: %w", err)
			}
			save, err := ipt.CurrentNAT(ctx)
			if err != nil {
				if !dryRun {
					return err
				}
				save = "" // a dry run shows the rules as for an empty table
			}
			script, err := capture.InstallScript(c, save)
			if err != nil {
				return err
			}
			return applyOrPrint(ctx, stdout, ipt, script, dryRun)
		},
	}
	f := cmd.Flags
	f.IntVar(&c.OutboundPort, "outbound-port", capture.DefaultOutboundPort, "the proxy's outbound capture port")
	f.IntVar(&c.InboundPort, "inbound-port", capture.DefaultInboundPort, "the proxy's inbound capture port")
	f.IntVar(&c.DNSPort, "dns-port", capture.DefaultDNSPort, "the proxy's DNS port (with --capture-dns)")
	f.StringVar(&uids, "proxy-uid", strconv.Itoa(capture.DefaultProxyUID), "uids whose connections are not captured: the proxy's (comma-separated; empty for none)")
	f.StringVar(&gids, "proxy-gid", "", "gids whose connections are not captured (comma-separated)")
	f.StringVar(&mark, "proxy-mark", "", "packet mark whose connections are not captured")
	f.StringVar(&exOutPorts, "exclude-outbound-ports", "", "destination ports not captured on the way out (comma-separated)")
	f.StringVar(&exInPorts, "exclude-inbound-ports", "", "local ports not captured on the way in (comma-separated), e.g. the proxy's admin port")
	f.StringVar(&exOutCIDRs, "exclude-outbound-cidrs", "", "destination CIDRs not captured on the way out (comma-separated)")
	f.BoolVar(&c.CaptureDNS, "capture-dns", false, "send DNS (UDP and TCP port 53) to the proxy's DNS port")
	f.BoolVar(&cleanup, "cleanup", false, "remove the rules and chains this command installed")
	f.BoolVar(&dryRun, "dry-run", false, "print the iptables-restore input instead of applying it")
	return cmd
}

func applyOrPrint(ctx context.Context, stdout io.Writer, ipt capture.IPTables, script string, dryRun bool) error {
	if dryRun {
		fmt.Fprintf(stdout, "# iptables-restore %s <<EOF\n%sEOF\n", strings.Join(capture.RestoreArgs, " "), script)
		return nil
	}
	return ipt.Apply(ctx, script)
}
