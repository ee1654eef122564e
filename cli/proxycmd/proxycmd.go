// Package proxycmd is the `proxy` command, shared by `weft proxy` and the
// slim `weft-proxy` binary. It imports nothing of the control plane.
package proxycmd

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/cli/logging"
	"github.com/weftmesh/weft/internal/memlimit"
	"github.com/weftmesh/weft/proxy"
)

// Command returns the proxy command.
func Command() *cobra.Command {
	var (
		o           proxy.Options
		upstreams   []string
		logLevel    string
		concurrency int
		mode        string
		memoryLimit string
	)
	cmd := &cobra.Command{
		Use:   "proxy --service S --control ADDR (--token T | --token-file F) --ca-file F --app ADDR --inbound ADDR --admin ADDR",
		Short: "Run the sidecar proxy beside one workload",
		Long: `Run the sidecar proxy beside one workload. It joins the mesh with the join token,
registers the workload, receives its configuration over xDS and serves:
  --inbound     mTLS from other proxies, forwarded to --app
  --upstream    NAME=LOCALADDR: a local port that reaches service NAME (or NAME.NAMESPACE)
  --http-proxy  a local HTTP proxy port that routes by Host (service or service.namespace)
SIGTERM drains: the endpoint leaves the mesh, in-flight requests finish, then it exits.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.New(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			o.Log = log
			if o.Mode, err = xdsmeta.ParseProxyMode(mode); err != nil {
				return fmt.Errorf("--mode: %w", err)
			}
			if o.Namespace == "" {
				o.Namespace = "default"
			}
			for _, s := range upstreams {
				u, err := xdsmeta.ParseUpstream(s, o.Namespace)
				if err != nil {
					return err
				}
				o.Upstreams = append(o.Upstreams, u)
			}
			if err := setConcurrency(concurrency); err != nil {
				return err
			}
			if err := memlimit.Apply(memoryLimit, os.DirFS("/"), log); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return proxy.Run(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Service, "service", "", "service this workload belongs to")
	f.StringVar(&mode, "mode", string(xdsmeta.ModeExplicit), "explicit (a sidecar), ingress (a gateway serving the Gateways that name --service), egress, or transparent (a sidecar whose pod's TCP 'weft proxy iptables' redirects to ports 15001/15006; --inbound is then the pod's IP:app port that peers dial)")
	f.StringVar(&o.ListenIP, "listen-ip", "", "ingress mode: the IP the Gateway listeners bind (default 0.0.0.0)")
	f.StringVar(&o.Namespace, "namespace", "default", "namespace of the service")
	f.StringVar(&o.Version, "version", "", "version label of this workload (for example v1)")
	f.StringVar(&o.Control, "control", "", "control plane gRPC address (host:port)")
	f.StringVar(&o.Token, "token", "", "join token (from 'weft token create')")
	f.StringVar(&o.TokenFile, "token-file", "", "file holding the join token")
	f.StringVar(&o.CAFile, "ca-file", "", "mesh root CA certificate (the control plane's <data-dir>/ca.crt)")
	f.StringVar(&o.App, "app", "", "address of the local application")
	f.StringVar(&o.Inbound, "inbound", "", "address of the mTLS inbound listener")
	f.StringVar(&o.Admin, "admin", "", "address of the admin endpoint")
	f.StringArrayVar(&upstreams, "upstream", nil, "NAME=LOCALADDR: a local port for service NAME (repeatable)")
	f.StringVar(&o.HTTPProxy, "http-proxy", "", "address of the explicit HTTP proxy listener")
	f.StringVar(&o.DNS, "dns", "", "ADDR of the DNS resolver that answers mesh names (payments, payments.default, payments.default.svc.weft) with their VIPs and forwards the rest (default 127.0.0.1:15053 in transparent mode; \"off\" disables it)")
	f.StringArrayVar(&o.DNSUpstreams, "dns-upstream", nil, "IP:PORT of a resolver that names outside the mesh go to (repeatable; default: the nameservers of /etc/resolv.conf)")
	f.DurationVar(&o.DrainDelay, "drain-delay", 0, "how long to keep serving after leaving the endpoint set on shutdown (default 1s)")
	f.DurationVar(&o.DrainTimeout, "drain-timeout", 0, "how long in-flight requests may take to finish on shutdown (default 30s)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&memoryLimit, "memory-limit", "auto", memlimit.FlagUsage)
	f.IntVar(&concurrency, "concurrency", defaultConcurrency, "worker threads (0: one per CPU); the GOMAXPROCS environment variable, if set, wins")
	cmd.AddCommand(iptablesCommand())
	return cmd
}

// defaultConcurrency is two workers, as Istio gives its sidecars: a proxy
// beside one app rarely needs more, and each extra thread costs cross-thread
// wake-ups on every request.
const defaultConcurrency = 2

// setConcurrency sets the number of threads running Go code, unless the
// operator already chose with GOMAXPROCS.
func setConcurrency(n int) error {
	if n < 0 {
		return fmt.Errorf("--concurrency %d: must be 0 (one per CPU) or more", n)
	}
	if os.Getenv("GOMAXPROCS") != "" {
		return nil
	}
	if n == 0 || n > runtime.NumCPU() {
		n = runtime.NumCPU()
	}
	runtime.GOMAXPROCS(n)
	return nil
}

// Run runs the proxy command alone, as the weft-proxy binary does.
func Run(args []string) int {
	cmd := Command()
	cmd.Use = "weft-proxy"
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		cmd.PrintErrln("error:", err)
		return 1
	}
	return 0
}
