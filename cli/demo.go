package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/demo"
	"github.com/weftmesh/weft/demo/apps"
)

func newDemoCmd() *cobra.Command {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole local mesh with demo services and traffic",
		Long: `Run a whole local mesh: the control plane, demo services (frontend, catalog v1 and v2,
ledger over gRPC, cache over plain TCP), a sidecar beside each, and a traffic generator.
Each is its own process on its own loopback address (127.0.1.N). Ctrl-C stops them all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("demo: find own binary: %w", err)
			}
			o.Bin = bin
			o.Out = cmd.OutOrStdout()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return demo.Run(ctx, o)
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "directory for the demo's data and logs (default: a new temporary directory)")
	cmd.Flags().IntVar(&o.RPS, "rps", 20, "requests per second the traffic generator sends")
	cmd.Flags().DurationVar(&o.Duration, "duration", 0, "stop by itself after this long (default: run until Ctrl-C)")
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
