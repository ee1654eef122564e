package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strings"
	"time"
)

// optimisationsHeading starts the section the proxy engineers keep by
// hand; writeResults carries it over from the previous file.
const optimisationsHeading = "## What each optimisation bought"

const optimisationsTemplate = optimisationsHeading + `

Filled in by hand, one line per change, each measured as an A/B with this harness in one
interleaved run (for example ` + "`go run ./bench -only weft,haproxy -protocols http1 -conns 16 -duration 20s -repeats 3`" + `
before and after), quoting the ratio to a peer rather than absolute figures.

| change (commit) | metric | before | after |
|---|---|---|---|
`

// earlierReference is what the issue quotes, measured earlier on this kind
// of machine with the same topology; it is context, not this run.
const earlierReference = `Measured earlier with the same topology (1000 qps, c16, 1 KB, one worker each), as quoted in the issue:

| peer | added p50/p90/p99 ms | vCPU per proxy (client/server) | RSS | max rps, one core |
|---|---|---|---|---|
| nginx | +0.152 / +0.231 / +0.378 | 0.085 / 0.058 | | 15.2k |
| haproxy | +0.166 / +0.254 / +0.405 | 0.092 / 0.067 | | 13.7k |
| caddy | +0.330 / +0.551 / +3.19 | 0.19 | 56 MB | 4.3k |
`

var protocolTitle = map[protocol]string{
	http1:    "HTTP/1.1",
	h2:       "HTTP/2 (h2c from the load generator)",
	grpcPing: "gRPC (fortio ping)",
}

// writeResults writes the report as Markdown to path, keeping the
// hand-written optimisations section of the file it replaces.
func writeResults(path string, r *report) error {
	keep := optimisationsTemplate
	if old, err := os.ReadFile(path); err == nil {
		if s := section(string(old), optimisationsHeading); s != "" {
			keep = s
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read previous results: %w", err)
	}
	var b bytes.Buffer
	r.markdown(&b)
	b.WriteString("\n" + strings.TrimRight(keep, "\n") + "\n")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// section returns a "## " section of a Markdown document, up to the next
// "## " heading.
func section(doc, heading string) string {
	i := strings.Index(doc, heading+"\n")
	if i < 0 {
		return ""
	}
	rest := doc[i+len(heading)+1:]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j+1]
	}
	return heading + "\n" + rest
}

func (r *report) markdown(b *bytes.Buffer) {
	o := r.opts
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("# Data-plane benchmark results\n\n")
	p("The latest run of the harness in this folder (see [README.md](README.md)); earlier results live in git history.\n")
	if o.Smoke {
		p("**This is a smoke run**: seconds per configuration, one repeat; the figures show that traffic flows, not how fast.\n")
	}
	p("\n- **Command:** `%s`\n", o.Command)
	p("- **Date:** %s (took %s)\n", r.start.UTC().Format("2006-01-02 15:04 UTC"), r.end.Sub(r.start).Round(time.Second))
	p("- **Machine:** %s. Shared and noisy: only ratios within this run count.\n", r.machine)
	p("- **Software:** %s\n", strings.Join(r.versions, ", "))
	p("- **Load:** fortio at %d qps, `-uniform -nocatchup -keepalive=true -payload-size %d` (the echo server sends the payload back), "+
		"%s measured after %s of warm-up, %d repeat(s) interleaved in the order %s; every figure is the median over repeats. "+
		"Added latency is the configuration's percentile minus direct's in the same repeat. CPU is utime+stime of each proxy's "+
		"processes over the run per 1000 requests (= vCPU at 1000 rps); RSS is VmHWM during the run; context switches "+
		"per request (every thread, voluntary or not) are in the CPU target's row.\n",
		o.QPS, o.Payload, o.Duration, o.Warmup, o.Repeats, strings.Join(r.configs, ", "))

	p("\n## Targets (Weft, HTTP/1.1, c%d, %d qps)\n\n", targetConns, targetQPS)
	vs, note := r.targets()
	if note != "" {
		p("Note: %s.\n\n", note)
	}
	if len(vs) > 0 {
		p("| target | Weft in this run | verdict |\n|---|---|---|\n")
		for _, v := range vs {
			p("| %s | %s | %s |\n", v.target, v.got, v.verdict)
		}
		p("\n")
	}
	p("%s", earlierReference)

	p("\n## Latency at %d qps\n", o.QPS)
	for _, proto := range o.Protocols {
		for _, c := range o.Conns {
			p("\n### %s, %d connections\n\n", protocolTitle[proto], c)
			p("| config | p50 ms | p90 ms | p99 ms | added p50 | added p90 | added p99 | CPU s/1k req client | CPU server | RSS MiB client | RSS server | qps | failed |\n")
			p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
			for _, w := range r.rows(cell{proto, c}) {
				if !w.measured {
					p("| %s | no clean run: %s |||||||||||| %d |\n", w.config, strings.Join(w.errs, "; "), w.failed)
					continue
				}
				cpu, rss := [2]string{"–", "–"}, [2]string{"–", "–"}
				if w.proxied {
					for i := range 2 {
						cpu[i] = fmt.Sprintf("%.3f", w.cpu[i])
						rss[i] = fmt.Sprintf("%.1f", w.rss[i]/(1<<20))
					}
				}
				p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %d |\n", w.config,
					ms(w.lat[0]), ms(w.lat[1]), ms(w.lat[2]),
					added(w, 0), added(w, 1), added(w, 2), cpu[0], cpu[1], rss[0], rss[1], w.qps, w.failed)
			}
		}
	}

	if o.TputDuration > 0 {
		p("\n## Maximum rate, each pair on one core\n\n")
		p("fortio `-qps 0 -c %d -t %s`; both proxies of the pair pinned to CPU %s, the load generator and the backends to CPU %s. "+
			"direct's row is the load generator and the echo server alone on their core: the harness's own ceiling.\n",
			o.TputConns, o.TputDuration, proxyCPU, loadCPU)
		for _, proto := range o.TputProtocols {
			p("\n### %s\n\n| config | rps | × HAProxy | failed |\n|---|--:|--:|--:|\n", protocolTitle[proto])
			for _, w := range r.tputRows(proto) {
				if !w.measured {
					p("| %s | no clean run: %s || %d |\n", w.config, strings.Join(w.errs, "; "), w.failed)
					continue
				}
				ratio := "–"
				if !math.IsNaN(w.vsHAP) {
					ratio = fmt.Sprintf("%.2f", w.vsHAP)
				}
				p("| %s | %.0f | %s | %d |\n", w.config, w.rps, ratio, w.failed)
			}
		}
	}

	if o.Repeats > 1 {
		r.spread(p)
	}

	if len(r.notRun) > 0 {
		p("\n## Not measured\n\n")
		for _, name := range o.Configs {
			if why, ok := r.notRun[name]; ok {
				p("- %s: %s\n", name, why)
			}
		}
	}
	if bad := r.failures(); len(bad) > 0 {
		p("\n## Failed runs\n\n")
		for _, f := range bad {
			p("- %s\n", f)
		}
	}
}

// spread writes, for every proxied configuration, the lowest and highest
// of the figures whose medians the tables above quote: on a shared machine
// the range says how far one repeat may stray from the next.
func (r *report) spread(p func(string, ...any)) {
	o := r.opts
	p("\n## Spread over repeats\n\n")
	p("The lowest and highest value over the %d repeats of each median above (clean repeats only).\n\n", o.Repeats)
	p("| protocol | conns | config | added p50 ms | added p90 ms | added p99 ms | CPU s/1k req client | CPU server |\n")
	p("|---|--:|---|---|---|---|---|---|\n")
	for _, proto := range o.Protocols {
		for _, c := range o.Conns {
			for _, w := range r.rows(cell{proto, c}) {
				if !w.proxied || !w.measured {
					continue
				}
				var add [3]string
				for i := range 3 {
					add[i] = "–"
					if !math.IsNaN(w.addedLo[i]) {
						add[i] = fmt.Sprintf("%+.3f … %+.3f", w.addedLo[i]*1e3, w.addedHi[i]*1e3)
					}
				}
				p("| %s | %d | %s | %s | %s | %s | %.3f … %.3f | %.3f … %.3f |\n", protocolTitle[proto], c, w.config,
					add[0], add[1], add[2], w.cpuLo[0], w.cpuHi[0], w.cpuLo[1], w.cpuHi[1])
			}
		}
	}
	if o.TputDuration > 0 {
		p("\n| max rate | config | rps |\n|---|---|---|\n")
		for _, proto := range o.TputProtocols {
			for _, w := range r.tputRows(proto) {
				if w.measured {
					p("| %s | %s | %.0f … %.0f |\n", protocolTitle[proto], w.config, w.rpsLo, w.rpsHi)
				}
			}
		}
	}
}

// added prints a row's added latency for percentile i, signed.
func added(w row, i int) string {
	if !w.proxied || math.IsNaN(w.added[i]) {
		return "–"
	}
	return fmt.Sprintf("%+.3f", w.added[i]*1e3)
}
