package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/cli/logging"
	"github.com/weftmesh/weft/controlplane"
)

func newControlCmd() *cobra.Command {
	var (
		cfg         controlplane.Config
		endpoints   string
		logLevel    string
		memoryLimit string
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
			if err := applyMemoryLimit(memoryLimit, os.DirFS("/"), log); err != nil {
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
	f.StringVar(&memoryLimit, "memory-limit", "auto", "soft limit on the process's Go memory (e.g. 512MiB, 2GiB): near it the GC collects more often "+
		"instead of letting the heap grow to twice what it keeps; auto: 90% of the container's cgroup memory limit, if it has one; none: no limit. "+
		"GOMEMLIMIT, when set, takes precedence")
	return cmd
}

// autoMemoryLimitShare is the share of a container's memory limit that
// --memory-limit=auto gives the Go runtime: the rest is for what it does
// not count (the binary's mapped text, etcd's memory-mapped database).
const autoMemoryLimitShare = 0.9

// applyMemoryLimit sets the Go runtime's soft memory limit from the
// --memory-limit flag. The control plane's heap is mostly per-proxy state
// and churns with every push, so without a limit the GC lets it reach twice
// its live size: in a container with a memory limit that is an OOM kill
// waiting for a burst. root is the filesystem the cgroup files are read from.
func applyMemoryLimit(flag string, root fs.FS, log *slog.Logger) error {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit from GOMEMLIMIT", "limit", v)
		return nil
	}
	var limit int64
	switch flag {
	case "none":
		return nil
	case "auto":
		container, ok, err := cgroupMemoryLimit(root)
		if err != nil {
			log.Warn("no memory limit: reading the cgroup's", "err", err)
			return nil
		}
		if !ok {
			return nil
		}
		limit = int64(float64(container) * autoMemoryLimitShare)
	default:
		var err error
		if limit, err = parseByteSize(flag); err != nil {
			return fmt.Errorf("--memory-limit: %w", err)
		}
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "bytes", limit, "flag", flag)
	return nil
}

// cgroupMemoryLimit returns the memory limit of the cgroup this process
// runs in (cgroup v2 memory.max, else v1 memory.limit_in_bytes), and
// whether it has one. It looks in the process's own cgroup directory, then
// at the hierarchy's root, which is the container's own under a cgroup
// namespace.
func cgroupMemoryLimit(root fs.FS) (int64, bool, error) {
	data, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return 0, false, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var candidates []string
		switch {
		case parts[0] == "0" && parts[1] == "":
			candidates = []string{path.Join("sys/fs/cgroup", parts[2], "memory.max"), "sys/fs/cgroup/memory.max"}
		case strings.Contains(","+parts[1]+",", ",memory,"):
			candidates = []string{path.Join("sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes"), "sys/fs/cgroup/memory/memory.limit_in_bytes"}
		default:
			continue
		}
		for _, file := range candidates {
			v, err := fs.ReadFile(root, file)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return 0, false, err
			}
			return parseCgroupLimit(strings.TrimSpace(string(v)))
		}
	}
	return 0, false, nil
}

// parseCgroupLimit reads a memory limit file: "max" (v2) or a page-rounded
// huge number (v1) mean none.
func parseCgroupLimit(v string) (int64, bool, error) {
	if v == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cgroup memory limit %q: %w", v, err)
	}
	if n <= 0 || n >= math.MaxInt64/2 {
		return 0, false, nil
	}
	return n, true, nil
}

// parseByteSize parses a size as GOMEMLIMIT writes them: a number of
// bytes, optionally followed by B, KiB, MiB, GiB or TiB.
func parseByteSize(v string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	var shift uint
	num := v
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is not a size such as 512MiB or 2GiB", v)
	}
	return n << shift, nil
}
