package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// errNoLoadGenerator means fortio could not be found or installed: nothing
// can be measured.
var errNoLoadGenerator = errors.New("no load generator")

// running is a configuration whose pairs are up.
type running struct {
	name  string
	pairs map[backend]*pair
}

// Run sets up every configuration of opts, measures them interleaved and
// returns the report. Every process it starts is stopped before it
// returns, also when ctx is cancelled.
func Run(ctx context.Context, opts Options) (*report, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(opts.Work); err != nil {
		return nil, fmt.Errorf("clear work dir: %w", err)
	}
	logDir := filepath.Join(opts.Work, "logs")
	for _, d := range []string{logDir, opts.Cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("work dir: %w", err)
		}
	}
	procs := newProcSet(logDir)
	defer procs.stopAll()

	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Printf("[%6s] %s\n", time.Since(start).Round(time.Second), fmt.Sprintf(format, args...))
	}
	e := &env{opts: opts, procs: procs, logf: logf,
		tools: &tools{root: opts.Root, cache: opts.Cache, install: opts.Install, log: logf}}
	rep := &report{opts: opts, start: start, machine: machine(), notRun: map[string]string{}}
	logf("work dir %s; logs in %s", opts.Work, logDir)

	if e.fortio, err = e.tools.fortio(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", errNoLoadGenerator, err)
	}
	if e.pki, err = newPKI(filepath.Join(opts.Work, "pki")); err != nil {
		return nil, err
	}
	need := backendsOf(opts.Protocols)
	if opts.TputDuration > 0 {
		need = backendsOf(opts.Protocols, opts.TputProtocols)
	}
	if err := e.startBackends(ctx, need); err != nil {
		return nil, err
	}
	rep.versions = append(rep.versions, "fortio "+fortioTool.version, "Go "+strings.TrimPrefix(runtime.Version(), "go"))

	var live []*running
	for _, name := range opts.Configs {
		m := procs.mark()
		rc, version, err := e.startConfig(ctx, name, need)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted: %w", ctx.Err())
		}
		if err != nil {
			procs.stopFrom(m) // what did start would only add noise
			logf("%s: not measured: %v", name, err)
			rep.notRun[name] = firstLine(err.Error())
			continue
		}
		if version != "" {
			rep.versions = append(rep.versions, version)
		}
		live = append(live, rc)
		logf("%s: ready", name)
	}
	if len(live) == 0 {
		return nil, errors.New("no configuration could be started")
	}
	for _, rc := range live {
		rep.configs = append(rep.configs, rc.name)
	}
	logf("measuring %s; about %s", strings.Join(rep.configs, ", "), opts.estimate(len(live)).Round(time.Second))

	if err := e.latencyPhase(ctx, live, rep); err != nil {
		return nil, err
	}
	if err := e.throughputPhase(ctx, live, rep); err != nil {
		return nil, err
	}
	rep.end = time.Now()
	logf("done")
	return rep, nil
}

// startConfig prepares a configuration, starts a pair per backend and
// probes every protocol through it.
func (e *env) startConfig(ctx context.Context, name string, need []backend) (*running, string, error) {
	cfg := configByName(name)
	e.logf("%s: starting", name)
	if err := cfg.prepare(ctx, e); err != nil {
		return nil, "", err
	}
	rc := &running{name: name, pairs: map[backend]*pair{}}
	for _, b := range need {
		p, err := cfg.startPair(ctx, e, b, addrsOf(name, b))
		if err != nil {
			return nil, "", fmt.Errorf("%s pair: %w", b, err)
		}
		rc.pairs[b] = p
		for proto, addr := range p.entries {
			if err := e.probe(ctx, proto, addr, p.proxies()...); err != nil {
				return nil, "", fmt.Errorf("%s pair: %w", b, err)
			}
		}
	}
	var version string
	if v, ok := cfg.(versioner); ok {
		version = v.version(ctx)
	}
	return rc, version, nil
}

// latencyPhase runs repeats × protocols × connections × configurations at
// the fixed rate, configurations innermost so the ones compared sit side by
// side in time.
func (e *env) latencyPhase(ctx context.Context, live []*running, rep *report) error {
	o := e.opts
	for r := 1; r <= o.Repeats; r++ {
		for _, proto := range o.Protocols {
			for _, c := range o.Conns {
				for _, rc := range live {
					s := e.measureLatency(ctx, rc, proto, c, r)
					if ctx.Err() != nil {
						return fmt.Errorf("interrupted: %w", ctx.Err())
					}
					rep.samples = append(rep.samples, s)
					e.logf("repeat %d/%d %-5s c%-3d %-8s %s", r, o.Repeats, proto, c, rc.name, s.summary())
				}
			}
		}
	}
	return nil
}

// throughputPhase runs repeats × protocols × configurations at the maximum
// rate with each pair on one core.
func (e *env) throughputPhase(ctx context.Context, live []*running, rep *report) error {
	o := e.opts
	if o.TputDuration <= 0 {
		return nil
	}
	for r := 1; r <= o.Repeats; r++ {
		for _, proto := range o.TputProtocols {
			for _, rc := range live {
				s := e.measureThroughput(ctx, rc, proto, r)
				if ctx.Err() != nil {
					return fmt.Errorf("interrupted: %w", ctx.Err())
				}
				rep.tputs = append(rep.tputs, s)
				e.logf("repeat %d/%d max   %-5s %-8s %s", r, o.Repeats, proto, rc.name, s.summary())
			}
		}
	}
	return nil
}

// estimate is how long the measuring takes for n configurations.
func (o Options) estimate(n int) time.Duration {
	lat := time.Duration(len(o.Protocols)*len(o.Conns)) * (o.Duration + o.Warmup)
	tput := time.Duration(len(o.TputProtocols)) * o.TputDuration
	if o.TputDuration <= 0 {
		tput = 0
	}
	return time.Duration(o.Repeats*n) * (lat + tput)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
