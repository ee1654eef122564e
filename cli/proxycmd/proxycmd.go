// Package proxycmd is the `proxy` command, shared by `weft proxy` and the
// slim `weft-proxy` binary. It imports nothing of the control plane, and no
// CLI framework: `weft` wraps it in cobra, while weft-proxy parses its flags
// with pflag alone. A framework that executes text templates makes the
// linker keep every exported method of every type in the binary, which
// costs the sidecar megabytes of resident text.
package proxycmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/cli/logging"
	"github.com/weftmesh/weft/internal/memlimit"
	"github.com/weftmesh/weft/proxy"
)

// Command is a command's flags, help and action, for a CLI to present.
type Command struct {
	Use   string // the usage line, its first word the command's name
	Short string
	Long  string
	Flags *pflag.FlagSet
	// Run runs the command once Flags hold the parsed arguments.
	Run         func(ctx context.Context, stdout, stderr io.Writer) error
	Subcommands []*Command
}

// Name is the first word of Use.
func (c *Command) Name() string { name, _, _ := strings.Cut(c.Use, " "); return name }

// Proxy returns the proxy command, with iptables as its subcommand.
func Proxy() *Command {
	var (
		o           proxy.Options
		upstreams   []string
		logLevel    string
		concurrency int
		mode        string
		memoryLimit string
		gcPercent   int
	)
	cmd := &Command{
		Use:   "proxy --service S --control ADDR (--token T | --token-file F) --ca-file F --app ADDR --inbound ADDR --admin ADDR",
		Short: "Run the sidecar proxy beside one workload",
		Long: `Run the sidecar proxy beside one workload. It joins the mesh with the join token,
registers the workload, receives its configuration over xDS and serves:
  --inbound     mTLS from other proxies, forwarded to --app
  --upstream    NAME=LOCALADDR: a local port that reaches service NAME (or NAME.NAMESPACE)
  --http-proxy  a local HTTP proxy port that routes by Host (service or service.namespace)
SIGTERM drains: the endpoint leaves the mesh, in-flight requests finish, then it exits.`,
		Flags: pflag.NewFlagSet("proxy", pflag.ContinueOnError),
		Run: func(ctx context.Context, _, stderr io.Writer) error {
			log, err := logging.New(stderr, logLevel)
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
			if err := memlimit.ApplyGCPercent(gcPercent, log); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return proxy.Run(ctx, o)
		},
	}
	f := cmd.Flags
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
	f.IntVar(&gcPercent, "gc-percent", defaultGCPercent, memlimit.GCPercentUsage)
	f.IntVar(&concurrency, "concurrency", defaultConcurrency, "worker threads (0: one per CPU); the GOMAXPROCS environment variable, if set, wins")
	cmd.Subcommands = []*Command{iptablesCommand()}
	return cmd
}

// defaultGCPercent is Go's own. A sidecar keeps some 4 MB live; at 50 it
// stays about 3 MB smaller at 1000 requests a second, but collects twice
// as often, which took some 15% off its throughput on one core
// (bench/RESULTS.md): the operator picks the trade.
const defaultGCPercent = 100

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

// Run runs the proxy command alone, as the weft-proxy binary does, and
// returns the process's exit code.
func Run(args []string) int {
	return exitCode(context.Background(), Proxy(), "weft-proxy", args, os.Stdout, os.Stderr)
}

// exitCode parses args for cmd, or for the subcommand args name first, and
// runs it; -h or --help prints the help instead. name is the program's
// name in the help. Errors go to stderr; the result is an exit code.
func exitCode(ctx context.Context, cmd *Command, name string, args []string, stdout, stderr io.Writer) int {
	if err := execute(ctx, cmd, name, args, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	return 0
}

func execute(ctx context.Context, cmd *Command, name string, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if args[0] == "help" {
			printHelp(stdout, cmd, name)
			return nil
		}
		for _, sub := range cmd.Subcommands {
			if args[0] == sub.Name() {
				return execute(ctx, sub, name+" "+sub.Name(), args[1:], stdout, stderr)
			}
		}
	}
	cmd.Flags.SetOutput(io.Discard) // errors are returned, help printed below
	if err := cmd.Flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printHelp(stdout, cmd, name)
			return nil
		}
		return fmt.Errorf("%w (see %s --help)", err, name)
	}
	if rest := cmd.Flags.Args(); len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q: %s takes flags only (see %s --help)", rest[0], name, name)
	}
	return cmd.Run(ctx, stdout, stderr)
}

func printHelp(w io.Writer, cmd *Command, name string) {
	fmt.Fprintf(w, "%s\n\nUsage:\n  %s [flags]\n", cmd.Long, name)
	if len(cmd.Subcommands) > 0 {
		fmt.Fprintf(w, "\nCommands:\n")
		for _, sub := range cmd.Subcommands {
			fmt.Fprintf(w, "  %-10s %s\n", sub.Name(), sub.Short)
		}
	}
	fmt.Fprintf(w, "\nFlags:\n%s", cmd.Flags.FlagUsages())
}
