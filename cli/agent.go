package cli

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/agent"
	"github.com/weftmesh/weft/cli/logging"
)

func newAgentCmd() *cobra.Command {
	var (
		o        agent.Options
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "agent --service S --control ADDR --token-file F --ca-file F --out DIR [--serve ADDR]",
		Short: "Keep a proxyless gRPC workload's SVID files fresh (and register its server)",
		Long: `Keep a proxyless gRPC workload's identity, as 'weft proxy' does for a sidecar'd one.
It joins the mesh with the join token, writes the SVID (cert.pem), its key (key.pem)
and the trust bundle (bundle.pem) into --out, atomically, and re-issues them at about
half their lifetime, until it is killed. grpc-go's file_watcher certificate provider
(see 'weft bootstrap grpc') reads them.

With --serve, the address the workload's gRPC server listens on, it also registers
the workload, ready while that address accepts connections, so clients find it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.New(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			o.Log = log
			if err := o.Validate(); err != nil {
				return usagef("%v", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return agent.Run(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Service, "service", "", "service this workload belongs to")
	f.StringVar(&o.Namespace, "namespace", "default", "namespace of the service")
	f.StringVar(&o.Version, "version", "", "version label of the workload (with --serve)")
	f.StringVar(&o.Control, "control", "", "control plane gRPC address (host:port)")
	f.StringVar(&o.TokenFile, "token-file", "", "file holding the join token (from 'weft token create')")
	f.StringVar(&o.CAFile, "ca-file", "", "mesh root CA certificate (the control plane's <data-dir>/ca.crt)")
	f.StringVar(&o.OutDir, "out", "", "directory to write cert.pem, key.pem and bundle.pem into")
	f.StringVar(&o.Serve, "serve", "", "address the workload's gRPC server listens on, to register (IP:port)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
