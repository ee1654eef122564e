// Command controlplane benchmarks `weft control` with simulated proxies.
//
//	go run ./bench/controlplane [-proxies 100,1000,2000] [-services 1000] [-churn 30/s] [-smoke]
//
// It builds weft, starts a real `weft control` (embedded etcd, its own data
// dir) for every proxy count, and simulates the proxies as goroutines of
// this process: each makes its own P-256 key, gets its SVID from the
// Identity service with a join token, and opens, over TLS with that SVID, an
// ADS stream (state of the world, every response ACKed) and a Registry
// stream for its workload. It times endpoint and Service changes to the ACK
// at every proxy that should get them, measures the control plane's memory
// and CPU at rest and under endpoint churn, and the Identity service's CSR
// rate. See RESULTS.md next to this file for what it printed last.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type binary struct{ label, path string }

type config struct {
	proxies     []int
	services    int
	churnRate   float64
	churnFor    time.Duration
	events      int
	settle      time.Duration
	restFor     time.Duration
	svidFor     time.Duration
	svidWarmup  time.Duration
	svidClients int
	setupConc   int
	runs        int
	seed        uint64
	bins        []binary
	smoke       bool
	skipSVID    bool
	skipScale   bool
	out         string
	profileDir  string
	note        string
	workDir     string
	loadStart   string
	args        []string
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("controlplane", flag.ContinueOnError)
	var (
		proxies = fs.String("proxies", "100,1000,2000", "comma-separated numbers of simulated proxies; one control plane each")
		churn   = fs.String("churn", "30/s", "endpoint joins and leaves per second during the churn phase")
		bins    = fs.String("bin", "", "weft binaries to compare, label=path,... (default: build this module's weft)")
		cfg     = &config{args: args}
	)
	fs.IntVar(&cfg.services, "services", 1000, "Service resources applied; the proxies are the endpoints of as many as they fill, 2 to 5 each")
	fs.DurationVar(&cfg.churnFor, "churn-for", 20*time.Second, "how long the churn lasts")
	fs.IntVar(&cfg.events, "events", 40, "timed endpoint joins and leaves (each), Service changes, and Route changes, per proxy count")
	fs.DurationVar(&cfg.restFor, "rest", 10*time.Second, "how long CPU is measured at rest")
	fs.DurationVar(&cfg.svidFor, "svid-for", 5*time.Second, "how long each SVID issuance mode is measured")
	fs.IntVar(&cfg.svidClients, "svid-clients", 64, "concurrent clients asking for SVIDs")
	fs.IntVar(&cfg.setupConc, "setup-concurrency", 32, "proxies joining at once while the mesh is built")
	fs.IntVar(&cfg.runs, "runs", 1, "repeats of every configuration (interleaved); medians are reported")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the topology")
	fs.BoolVar(&cfg.smoke, "smoke", false, "a few seconds with 20 proxies: checks that the harness works")
	fs.BoolVar(&cfg.skipSVID, "skip-svid", false, "skip the SVID issuance rate")
	fs.BoolVar(&cfg.skipScale, "skip-scale", false, "skip the simulated proxies (measure the SVID issuance rate only)")
	fs.StringVar(&cfg.out, "out", "", "write the report here (default bench/controlplane/RESULTS.md, none with -smoke)")
	fs.StringVar(&cfg.note, "note", "", "a line for the report, such as what the -bin binaries are")
	fs.StringVar(&cfg.profileDir, "profile", "", "save CPU profiles of the control plane (setup, churn, SVID modes) and heap and goroutine profiles at rest, at the largest proxy count, into this dir")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.smoke {
		if !set["proxies"] {
			*proxies = "20"
		}
		if !set["services"] {
			cfg.services = 12
		}
		if !set["churn-for"] {
			cfg.churnFor = 2 * time.Second
		}
		if !set["events"] {
			cfg.events = 4
		}
		if !set["rest"] {
			cfg.restFor = time.Second
		}
		if !set["svid-for"] {
			cfg.svidFor = time.Second
		}
		if !set["svid-clients"] {
			cfg.svidClients = 16
		}
		cfg.settle = 200 * time.Millisecond
		cfg.svidWarmup = 200 * time.Millisecond
	} else {
		cfg.settle = 3 * time.Second
		cfg.svidWarmup = time.Second
		if !set["out"] {
			cfg.out = "bench/controlplane/RESULTS.md"
		}
	}
	for _, p := range strings.Split(*proxies, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 2 {
			return nil, fmt.Errorf("-proxies %q: want numbers of at least 2", *proxies)
		}
		cfg.proxies = append(cfg.proxies, n)
	}
	rate, ok := strings.CutSuffix(strings.TrimSpace(*churn), "/s")
	r, err := strconv.ParseFloat(rate, 64)
	if !ok || err != nil || r <= 0 {
		return nil, fmt.Errorf("-churn %q: want a rate such as 30/s", *churn)
	}
	cfg.churnRate = r
	if cfg.services < 1 || cfg.events < 1 || cfg.runs < 1 || cfg.svidClients < 1 || cfg.setupConc < 1 {
		return nil, errors.New("-services, -events, -runs, -svid-clients and -setup-concurrency must be positive")
	}
	if *bins != "" {
		for _, b := range strings.Split(*bins, ",") {
			label, path, ok := strings.Cut(b, "=")
			if !ok || label == "" || path == "" {
				return nil, fmt.Errorf("-bin %q: want label=path,...", *bins)
			}
			cfg.bins = append(cfg.bins, binary{label, path})
		}
	}
	return cfg, nil
}

// report is what a run measured, by proxy count and binary label, and the
// SVID rates by label: the metrics of every repeat.
type report struct {
	scale map[int]map[string][]metrics
	svid  map[string][]metrics
}

// run builds (unless given binaries), runs every configuration interleaved,
// prints the tables to w and writes them to cfg.out.
func run(ctx context.Context, cfg *config, w io.Writer) (*report, error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\n", args...)
	}
	work, err := os.MkdirTemp("", "weft-cp-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	cfg.workDir = work
	if len(cfg.bins) == 0 {
		logf("building weft ...")
		bin, err := buildWeft(ctx, work)
		if err != nil {
			return nil, err
		}
		cfg.bins = []binary{{"weft", bin}}
	}
	if cfg.profileDir != "" {
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return nil, err
		}
	}
	started := time.Now()
	cfg.loadStart = loadAverage()
	rep := &report{scale: map[int]map[string][]metrics{}, svid: map[string][]metrics{}}
	for _, n := range cfg.proxies {
		if cfg.skipScale {
			break
		}
		rep.scale[n] = map[string][]metrics{}
		for rep1 := range cfg.runs {
			for _, b := range cfg.bins {
				logf("== %d proxies, %d services, %s (run %d of %d)", n, cfg.services, b.label, rep1+1, cfg.runs)
				r := &scaleRun{cfg: cfg, bin: b.path, n: n, log: logf, label: b.label}
				m, err := r.run(ctx)
				if err != nil {
					return nil, fmt.Errorf("%d proxies, %s: %w", n, b.label, err)
				}
				rep.scale[n][b.label] = append(rep.scale[n][b.label], m)
			}
		}
	}
	if !cfg.skipSVID {
		for rep1 := range cfg.runs {
			for _, b := range cfg.bins {
				logf("== SVID issuance, %s (run %d of %d)", b.label, rep1+1, cfg.runs)
				m, err := runSVID(ctx, cfg, b.path, b.label, logf)
				if err != nil {
					return nil, fmt.Errorf("SVID issuance, %s: %w", b.label, err)
				}
				rep.svid[b.label] = append(rep.svid[b.label], m)
			}
		}
	}
	text := rep.markdown(cfg, started)
	fmt.Fprint(w, "\n"+text)
	if cfg.out != "" {
		path := cfg.out
		if !filepath.IsAbs(path) {
			if root, err := moduleRoot(); err == nil {
				path = filepath.Join(root, path)
			}
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return rep, err
		}
		logf("wrote %s", path)
	}
	return rep, nil
}

// moduleRoot is the directory of the go.mod that holds the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// median of one metric over repeats.
func median(ms []metrics, key string) (float64, bool) {
	var v []float64
	for _, m := range ms {
		if x, ok := m[key]; ok {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}

// loadAverage is the first three fields of /proc/loadavg: the machine is shared.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func machineLine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("nproc %d, %s, %s %s/%s", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
