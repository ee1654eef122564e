package cli

import (
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/cli/logging"
	"github.com/weftmesh/weft/controlplane"
	"github.com/weftmesh/weft/internal/memlimit"
)

func newControlCmd() *cobra.Command {
	var (
		cfg         controlplane.Config
		endpoints   string
		logLevel    string
		memoryLimit string
		gcPercent   int
	)
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the control plane",
		Long: `Run the control plane: the store (embedded etcd, or --etcd-endpoints), the mesh CA,
xDS/Identity/Registry on --grpc-addr, the CLI's API on --api-addr and metrics on
--dashboard-addr. The first start creates the root CA and an admin credential and writes
<data-dir>/config (for the CLI) and <data-dir>/ca.crt (for proxies).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.New(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			if err := memlimit.Apply(memoryLimit, os.DirFS("/"), log); err != nil {
				return err
			}
			if err := memlimit.ApplyGCPercent(gcPercent, log); err != nil {
				return err
			}
			cfg.Log = log
			cfg.Version = Version
			if endpoints != "" {
				for _, e := range strings.Split(endpoints, ",") {
					if e = strings.TrimSpace(e); e != "" {
						cfg.EtcdEndpoints = append(cfg.EtcdEndpoints, e)
					}
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return controlplane.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", controlplane.DefaultDataDir(), "directory for the embedded store, the client config and ca.crt")
	f.StringVar(&cfg.GRPCAddr, "grpc-addr", "127.0.0.1:15010", "address for xDS, Identity and Registry (TLS)")
	f.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:15011", "address for the HTTPS API the CLI uses")
	f.StringVar(&cfg.DashboardAddr, "dashboard-addr", "127.0.0.1:15014", "address for the dashboard and /metrics")
	f.StringVar(&endpoints, "etcd-endpoints", "", "comma-separated URLs of an external etcd cluster (default: embedded etcd)")
	f.StringVar(&cfg.TrustDomain, "trust-domain", "weft.local", "SPIFFE trust domain (fixed at first start)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cfg.CACert, "ca-cert", "", "external CA: PEM intermediate that signs SVIDs (optionally followed by its chain); needs --ca-key")
	f.StringVar(&cfg.CAKey, "ca-key", "", "external CA: PEM private key of --ca-cert")
	f.StringVar(&cfg.CABundle, "ca-bundle", "", "external CA: PEM roots proxies trust, when --ca-cert does not end with its root")
	f.DurationVar(&cfg.ScrapeInterval, "scrape-interval", 5*time.Second, "how often to read every proxy's metrics for weft stat and the dashboard")
	f.StringVar(&cfg.VIPRange, "vip-range", "240.240.0.0/16", "IPv4 CIDR that Services' virtual IPs (transparent mode) are allocated from")
	f.StringVar(&memoryLimit, "memory-limit", "auto", memlimit.FlagUsage)
	// Under half of Go's default: the control plane holds a large heap
	// that is mostly idle, so it pays the extra collections only in bursts
	// of changes. At 2000 proxies, 100 → 50 took peak RSS 442 → 361 MB for
	// CPU in churn 0.43 → 0.47 cores; once streams cost less, 50 → 40
	// took it 312 → 294 MB for 0.47 → 0.48 (bench/controlplane).
	f.IntVar(&gcPercent, "gc-percent", 40, memlimit.GCPercentUsage)
	return cmd
}
