package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Options is one benchmark run. The zero value is not useful: start from
// DefaultOptions (the full protocol of BENCHMARKS.md) or SmokeOptions.
type Options struct {
	// Configs are the configurations under test, in the order they are
	// interleaved: direct, weft, haproxy, nginx, caddy.
	Configs []string
	// Protocols are the load's protocols: http1, h2, grpc.
	Protocols []protocol
	// Conns are fortio's -c values for the fixed-rate latency runs.
	Conns []int
	// QPS is the fixed rate of the latency runs (fortio -qps).
	QPS int
	// Payload is the request (and echoed response) body size in bytes.
	Payload int
	// Duration is the length of each measured latency run.
	Duration time.Duration
	// Warmup is an unmeasured run at the same load before each measured one.
	Warmup time.Duration
	// Repeats is how many times the whole interleaved sequence runs;
	// the report quotes medians over repeats.
	Repeats int
	// TputDuration is the length of each max-rate run (-qps 0); zero skips them.
	TputDuration time.Duration
	// TputConns is fortio's -c for the max-rate runs.
	TputConns int
	// TputProtocols are the protocols of the max-rate runs.
	TputProtocols []protocol
	// Smoke marks a quick functional run: the report judges no target.
	Smoke bool
	// Install lets the harness install what is missing (apt-get, go install).
	Install bool
	// Root is the module root (where go.mod is); found from the working
	// directory when empty.
	Root string
	// Work is where this run keeps configs, certificates, logs and fortio's
	// JSON; bench/out/run when empty. It is emptied at the start.
	Work string
	// Cache keeps built tools between runs (fortio, caddy, weft);
	// bench/out/bin when empty.
	Cache string
	// Results is the report's path; bench/RESULTS.md (bench/out/RESULTS-smoke.md
	// for smoke runs) when empty.
	Results string
	// Command is the command line quoted in the report.
	Command string
	// Profile, when set, is a directory that gets a CPU profile (over the
	// measured run) and a heap profile (after it) of each weft proxy, for
	// every latency run, from the proxies' admin endpoints.
	Profile string
}

// DefaultOptions is the full protocol: every configuration, every protocol,
// c 4/16/64 at 1000 qps for 60 s, three repeats, 30 s max-rate runs.
func DefaultOptions() Options {
	return Options{
		Configs:       configNames(),
		Protocols:     []protocol{http1, h2, grpcPing},
		Conns:         []int{4, 16, 64},
		QPS:           1000,
		Payload:       1024,
		Duration:      60 * time.Second,
		Warmup:        3 * time.Second,
		Repeats:       3,
		TputDuration:  30 * time.Second,
		TputConns:     16,
		TputProtocols: []protocol{http1},
		Install:       true,
	}
}

// SmokeOptions checks that every configuration carries traffic: a few
// seconds each, one repeat, c16 only. Caddy is left out unless it is
// already built, so a smoke run never spends minutes compiling it.
func SmokeOptions() Options {
	o := DefaultOptions()
	o.Smoke = true
	o.Configs = nil // resolved by withDefaults: see smokeConfigs
	o.Conns = []int{16}
	o.Duration = 2 * time.Second
	o.Warmup = 0
	o.Repeats = 1
	o.TputDuration = 2 * time.Second
	return o
}

// parseFlags turns the command line into Options.
func parseFlags(args []string) (Options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	smoke := fs.Bool("smoke", false, "quick functional run: a few seconds per configuration, one repeat, no targets judged")
	only := fs.String("only", "", "comma-separated configurations (default all: "+strings.Join(configNames(), ",")+")")
	protos := fs.String("protocols", "", "comma-separated protocols of the latency runs: http1,h2,grpc")
	conns := fs.String("conns", "", "comma-separated fortio -c values of the latency runs (default 4,16,64)")
	qps := fs.Int("qps", 0, "fixed request rate of the latency runs (default 1000)")
	payload := fs.Int("payload", 0, "request body size in bytes, echoed back (default 1024)")
	dur := fs.Duration("duration", 0, "length of each measured latency run (default 60s)")
	warm := fs.Duration("warmup", -1, "unmeasured run before each measured one (default 3s, 0 in smoke)")
	repeats := fs.Int("repeats", 0, "times the interleaved sequence runs; medians are reported (default 3)")
	tput := fs.Duration("tput-duration", -1, "length of each max-rate run with the proxies on one core; 0 skips (default 30s)")
	tputConns := fs.Int("tput-conns", 0, "fortio -c of the max-rate runs (default 16)")
	tputProtos := fs.String("tput-protocols", "", "protocols of the max-rate runs (default http1)")
	noInstall := fs.Bool("no-install", false, "do not install missing tools; configurations that lack one are skipped")
	results := fs.String("results", "", "report path (default bench/RESULTS.md; bench/out/RESULTS-smoke.md with -smoke)")
	work := fs.String("work", "", "work directory for configs, logs and fortio output (default bench/out/run)")
	profile := fs.String("profile", "", "directory for CPU and heap profiles of each weft proxy during each latency run (none by default)")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments %q (every setting is a flag; see -h)", fs.Args())
	}
	o := DefaultOptions()
	if *smoke {
		o = SmokeOptions()
	}
	var errs []error
	if *only != "" {
		o.Configs = splitList(*only)
	}
	if *protos != "" {
		p, err := parseProtocols(*protos)
		errs = append(errs, err)
		o.Protocols = p
	}
	if *tputProtos != "" {
		p, err := parseProtocols(*tputProtos)
		errs = append(errs, err)
		o.TputProtocols = p
	}
	if *conns != "" {
		o.Conns = nil
		for _, s := range splitList(*conns) {
			n, err := strconv.Atoi(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("-conns: %q is not a number", s))
			}
			o.Conns = append(o.Conns, n)
		}
	}
	setIf(&o.QPS, *qps, *qps != 0)
	setIf(&o.Payload, *payload, *payload != 0)
	setIf(&o.Duration, *dur, *dur != 0)
	setIf(&o.Warmup, *warm, *warm >= 0)
	setIf(&o.Repeats, *repeats, *repeats != 0)
	setIf(&o.TputDuration, *tput, *tput >= 0)
	setIf(&o.TputConns, *tputConns, *tputConns != 0)
	o.Install = !*noInstall
	o.Results, o.Work, o.Profile = *results, *work, *profile
	o.Command = commandLine(args)
	return o, errors.Join(errs...)
}

func setIf[T any](dst *T, v T, ok bool) {
	if ok {
		*dst = v
	}
}

// Validate names every problem with the options.
func (o *Options) Validate() error {
	var errs []error
	if len(o.Configs) == 0 {
		errs = append(errs, errors.New("no configuration to run"))
	}
	for _, c := range o.Configs {
		if configByName(c) == nil {
			errs = append(errs, fmt.Errorf("unknown configuration %q (want one of %s)", c, strings.Join(configNames(), ", ")))
		}
	}
	if len(o.Protocols) == 0 {
		errs = append(errs, errors.New("no protocol to run"))
	}
	for _, c := range o.Conns {
		if c < 1 {
			errs = append(errs, fmt.Errorf("connections must be ≥ 1, got %d", c))
		}
	}
	if len(o.Conns) == 0 {
		errs = append(errs, errors.New("no connection count to run"))
	}
	if o.QPS < 1 {
		errs = append(errs, fmt.Errorf("qps must be ≥ 1, got %d", o.QPS))
	}
	if o.Payload < 0 {
		errs = append(errs, fmt.Errorf("payload must be ≥ 0, got %d", o.Payload))
	}
	if o.Duration < time.Second {
		errs = append(errs, fmt.Errorf("duration must be ≥ 1s, got %s", o.Duration))
	}
	if o.Repeats < 1 {
		errs = append(errs, fmt.Errorf("repeats must be ≥ 1, got %d", o.Repeats))
	}
	if o.TputDuration > 0 && (o.TputConns < 1 || len(o.TputProtocols) == 0) {
		errs = append(errs, errors.New("max-rate runs need tput-conns ≥ 1 and at least one protocol"))
	}
	return errors.Join(errs...)
}

// withDefaults fills the paths left empty, relative to the module root,
// picks the configurations when none were named, and validates the result.
func (o Options) withDefaults() (Options, error) {
	if o.Root == "" {
		root, err := moduleRoot()
		if err != nil {
			return o, err
		}
		o.Root = root
	}
	out := filepath.Join(o.Root, "bench", "out")
	if o.Work == "" {
		o.Work = filepath.Join(out, "run")
	}
	if o.Cache == "" {
		o.Cache = filepath.Join(out, "bin")
	}
	if o.Results == "" {
		o.Results = filepath.Join(o.Root, "bench", "RESULTS.md")
		if o.Smoke {
			o.Results = filepath.Join(out, "RESULTS-smoke.md")
		}
	}
	if o.Command == "" {
		o.Command = "go run ./bench"
	}
	if o.Configs == nil {
		o.Configs = configNames()
		if o.Smoke {
			o.Configs = smokeConfigs(o)
		}
	}
	return o, o.Validate()
}

// moduleRoot walks up from the working directory to Weft's go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/weftmesh/weft\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find module root: no go.mod of github.com/weftmesh/weft above %s", dir)
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// smokeConfigs is every configuration whose tools are present or cheap to
// get: Caddy only when its binary is already in the cache.
func smokeConfigs(o Options) []string {
	var names []string
	for _, n := range configNames() {
		if n == "caddy" && !caddyBuilt(o) {
			continue
		}
		names = append(names, n)
	}
	return names
}

// commandLine is how the run was asked for, quoted so it can be pasted.
func commandLine(args []string) string {
	parts := []string{"go run ./bench"}
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
