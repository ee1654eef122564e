package cli

import (
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/demo"
	"github.com/weftmesh/weft/demo/apps"
)

func newDemoCmd() *cobra.Command {
	var (
		o      demo.Options
		subnet string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole local mesh with demo services and traffic",
		Long: `Run a whole local mesh: the control plane, demo services (frontend, catalog v1 and v2,
ledger over gRPC, cache over plain TCP), a sidecar beside each, and a traffic generator.
Each is its own process on its own loopback address (127.0.1.N). Ctrl-C stops them all.

With --capture (Linux, root, iproute2 and iptables) each workload is a pod instead:
its own network namespace on a bridge (weft-demo-<name> on 10.89.0.0/24), with the
capture rules of 'weft proxy iptables', a sidecar in transparent mode, and an app that
calls its peers by mesh name (http://catalog:8080). Everything it creates is removed
when it stops, and leftovers of a run that did not stop cleanly are removed at start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("demo: find own binary: %w", err)
			}
			o.Bin = bin
			o.Out = cmd.OutOrStdout()
			if subnet != "" {
				if o.CaptureSubnet, err = netip.ParsePrefix(subnet); err != nil {
					return fmt.Errorf("--capture-subnet %q: want a CIDR such as %s", subnet, demo.DefaultCaptureSubnet)
				}
			}
			// SIGHUP too: a closed terminal must not leave namespaces behind.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			return demo.Run(ctx, o)
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "directory for the demo's data and logs (default: a new temporary directory)")
	cmd.Flags().IntVar(&o.RPS, "rps", 20, "requests per second the traffic generator sends")
	cmd.Flags().DurationVar(&o.Duration, "duration", 0, "stop by itself after this long (default: run until Ctrl-C)")
	cmd.Flags().BoolVar(&o.Capture, "capture", false, "run each workload in its own network namespace with transparent capture (Linux, root, iproute2, iptables)")
	cmd.Flags().StringVar(&subnet, "capture-subnet", demo.DefaultCaptureSubnet.String(), "with --capture: the pods' private IPv4 range, unused on this host")
	cmd.AddCommand(newDemoAppCmd())
	return cmd
}

// newDemoAppCmd runs one demo app; the demo starts each app as its own process with it.
func newDemoAppCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "app NAME [flags]",
		Short:              "Run one demo app (used by 'weft demo')",
		Hidden:             true,
		Args:               cobra.MinimumNArgs(1),
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return apps.Run(ctx, args[0], args[1:], cmd.OutOrStdout())
		},
	}
}
