package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
)

// sample is one measured fixed-rate run of one configuration.
type sample struct {
	config   string
	proto    protocol
	conns    int
	repeat   int
	qps      float64    // achieved
	requests int64      // completed calls
	failed   int64      // calls without the expected answer
	lat      [3]float64 // p50, p90, p99 in seconds
	// cpu is each proxy's CPU seconds per 1000 requests (client, server);
	// rss each proxy's peak resident set during the run, and anon its
	// anonymous part at the end of the run, in bytes. All are zero for
	// direct.
	cpu  [2]float64
	rss  [2]int64
	anon [2]int64
	// switches is each proxy's context switches per request.
	switches [2]float64
	err      string // why the run did not count
}

// ok says whether the run carried traffic without a single failure.
func (s sample) ok() bool { return s.err == "" && s.requests > 0 && s.failed == 0 }

func (s sample) summary() string {
	if s.err != "" {
		return "ERROR " + s.err
	}
	out := fmt.Sprintf("p50 %.3f p90 %.3f p99 %.3f ms, %.0f qps", s.lat[0]*1e3, s.lat[1]*1e3, s.lat[2]*1e3, s.qps)
	if s.cpu != [2]float64{} || s.rss != [2]int64{} {
		out += fmt.Sprintf(", CPU/1k req %.3f/%.3f s, RSS %.1f/%.1f MiB (anonymous %.1f/%.1f)",
			s.cpu[0], s.cpu[1], mib(s.rss[0]), mib(s.rss[1]), mib(s.anon[0]), mib(s.anon[1]))
	}
	if s.failed > 0 {
		out += fmt.Sprintf(", %d FAILED", s.failed)
	}
	return out
}

// measureLatency runs the warm-up and then the measured fixed-rate run,
// reading each proxy's CPU time around the run and its peak RSS after.
func (e *env) measureLatency(ctx context.Context, rc *running, proto protocol, conns, repeat int) sample {
	s := sample{config: rc.name, proto: proto, conns: conns, repeat: repeat}
	p := rc.pairs[proto.backend()]
	run := loadRun{name: fmt.Sprintf("%s-%s-c%d-r%d", rc.name, proto, conns, repeat),
		proto: proto, addr: p.entries[proto], conns: conns, qps: e.opts.QPS, dur: e.opts.Duration}
	if e.opts.Warmup > 0 {
		warm := run
		warm.name, warm.dur = run.name+"-warmup", e.opts.Warmup
		if _, err := e.load(ctx, warm); err != nil {
			s.err = "warm-up: " + firstLine(err.Error())
			return s
		}
	}
	proxies := p.proxies()
	var before [2]float64
	var switchesBefore [2]uint64
	for i, pr := range proxies {
		if pr.exited() {
			s.err = fmt.Sprintf("%s exited: %v", pr.name, pr.err)
			return s
		}
		if err := resetPeakRSS(pr.pgid()); err != nil {
			e.logf("warning: %v (the peak is then since start)", err)
		}
		before[i] = cpuSeconds(pr.pgid())
		switchesBefore[i] = contextSwitches(pr.pgid())
	}
	profiled := e.profile(ctx, run.name, proxies, run.dur)
	res, err := e.load(ctx, run)
	profiled()
	if err != nil {
		s.err = firstLine(err.Error())
		return s
	}
	s.qps, s.requests, s.failed = res.ActualQPS, res.requests(), res.failed(proto)
	for i, q := range []float64{50, 90, 99} {
		s.lat[i] = res.percentile(q)
	}
	for i, pr := range proxies {
		if s.requests > 0 {
			s.cpu[i] = (cpuSeconds(pr.pgid()) - before[i]) / (float64(s.requests) / 1000)
			s.switches[i] = float64(contextSwitches(pr.pgid())-switchesBefore[i]) / float64(s.requests)
		}
		s.rss[i] = peakRSS(pr.pgid())
		s.anon[i] = anonRSS(pr.pgid())
	}
	if s.requests == 0 {
		s.err = "no request completed"
	}
	return s
}

// tputSample is one maximum-rate run of one configuration.
type tputSample struct {
	config   string
	proto    protocol
	repeat   int
	rps      float64
	requests int64
	failed   int64
	err      string
}

func (s tputSample) ok() bool { return s.err == "" && s.requests > 0 && s.failed == 0 }

func (s tputSample) summary() string {
	if s.err != "" {
		return "ERROR " + s.err
	}
	out := fmt.Sprintf("%.0f rps", s.rps)
	if s.failed > 0 {
		out += fmt.Sprintf(", %d FAILED", s.failed)
	}
	return out
}

// The cores of the maximum-rate runs: both proxies of the pair on one,
// the load generator and the backends on the other.
const (
	proxyCPU = "0"
	loadCPU  = "1"
)

// measureThroughput runs fortio at -qps 0 with the pair pinned to
// proxyCPU and the load generator and backends to loadCPU, then unpins.
func (e *env) measureThroughput(ctx context.Context, rc *running, proto protocol, repeat int) tputSample {
	s := tputSample{config: rc.name, proto: proto, repeat: repeat}
	p := rc.pairs[proto.backend()]
	pinned := e.backendProcs()
	cpus := ""
	if numCPU() >= 2 {
		cpus = loadCPU
		var pinErr []string
		for _, pr := range p.proxies() {
			if err := pin(ctx, pr.pgid(), proxyCPU); err != nil {
				pinErr = append(pinErr, err.Error())
			}
		}
		for _, pr := range pinned {
			if err := pin(ctx, pr.pgid(), loadCPU); err != nil {
				pinErr = append(pinErr, err.Error())
			}
		}
		defer func() {
			for _, pr := range append(p.proxies(), pinned...) {
				// A fresh context: unpin even when the run was interrupted.
				_ = pin(context.Background(), pr.pgid(), allCPUs())
			}
		}()
		if len(pinErr) > 0 {
			s.err = strings.Join(pinErr, "; ")
			return s
		}
	}
	res, err := e.load(ctx, loadRun{name: fmt.Sprintf("%s-%s-max-r%d", rc.name, proto, repeat),
		proto: proto, addr: p.entries[proto], conns: e.opts.TputConns, dur: e.opts.TputDuration, cpus: cpus})
	if err != nil {
		s.err = firstLine(err.Error())
		return s
	}
	s.rps, s.requests, s.failed = res.ActualQPS, res.requests(), res.failed(proto)
	if s.requests == 0 {
		s.err = "no request completed"
	}
	return s
}

// backendProcs are the running backend servers.
func (e *env) backendProcs() []*proc {
	var out []*proc
	for _, b := range backends {
		if app := e.backends[b]; app != nil {
			out = append(out, app.proc)
		}
	}
	return out
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// median of the values; NaN for none.
// bounds returns the lowest and highest of v, NaN for both when v is empty.
func bounds(v []float64) (lo, hi float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(v), slices.Max(v)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
