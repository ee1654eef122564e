package main

import (
	"fmt"
	"math"
	"strings"
)

// Weft's targets (issue 8), judged on HTTP/1.1 at c16 and 1000 qps with a
// 1 KiB payload, and on the HTTP/1.1 maximum rate with the pair on one core.
const (
	targetAddedP90 = 0.150e-3 // seconds
	targetAddedP99 = 0.250e-3 // seconds
	targetCPU      = 0.050    // CPU seconds per 1000 requests = vCPU at 1000 rps
	targetRSS      = 15 << 20 // bytes
	targetVsNginx  = 1.2      // × nginx's maximum rate
	targetVsCaddy  = 3.0      // × Caddy's maximum rate
	targetConns    = 16
	targetQPS      = 1000
	targetPayload  = 1024
)

// peerNames are the configurations Weft must beat.
var peerNames = []string{"haproxy", "nginx", "caddy"}

// verdict is one line of the targets table.
type verdict struct{ target, got, verdict string }

// targets judges Weft against its targets; note says why some could not be.
func (r *report) targets() (vs []verdict, note string) {
	var notes []string
	if r.opts.QPS != targetQPS || r.opts.Payload != targetPayload {
		notes = append(notes, fmt.Sprintf("this run's load (%d qps, %d B) is not the targets' (%d qps, %d B)",
			r.opts.QPS, r.opts.Payload, targetQPS, targetPayload))
	}
	judge := func(met bool, detail string) string {
		if r.opts.Smoke {
			return "not judged (smoke run)"
		}
		if met {
			return "**met**, " + detail
		}
		return "**not met**, " + detail
	}
	rows := r.rows(cell{http1, targetConns})
	w, ok := findRow(rows, "weft")
	if !ok {
		notes = append(notes, "Weft was not measured at HTTP/1.1 c16, so no latency, CPU or memory target is judged")
	} else {
		for i, t := range []struct {
			name  string
			limit float64
		}{{"p90", targetAddedP90}, {"p99", targetAddedP99}} {
			got := w.added[i+1]
			vs = append(vs, verdict{
				target:  fmt.Sprintf("added latency %s ≤ %.3f ms", t.name, t.limit*1e3),
				got:     ms(got) + " ms",
				verdict: judge(got <= t.limit, spare(got, t.limit, "ms", 1e3)),
			})
		}
		vs = append(vs, r.lowerThanPeers(rows, w, "added latency p90 and p99 lower than every peer",
			func(x row) []float64 { return []float64{x.added[1], x.added[2]} },
			func(v []float64) string { return fmt.Sprintf("p90 %s, p99 %s ms", ms(v[0]), ms(v[1])) }, judge))
		worstCPU := math.Max(w.cpu[0], w.cpu[1])
		vs = append(vs, verdict{
			target:  fmt.Sprintf("CPU per proxy ≤ %.3f s per 1000 requests (vCPU at 1000 rps)", targetCPU),
			got:     fmt.Sprintf("client %.3f, server %.3f (%s)", w.cpu[0], w.cpu[1], wakeUps(rows)),
			verdict: judge(worstCPU <= targetCPU, spare(worstCPU, targetCPU, "s", 1)),
		})
		vs = append(vs, r.lowerThanPeers(rows, w, "CPU per proxy lower than every peer's (client vs client, server vs server)",
			func(x row) []float64 { return x.cpu[:] },
			func(v []float64) string { return fmt.Sprintf("client %.3f, server %.3f s", v[0], v[1]) }, judge))
		worstRSS := math.Max(w.rss[0], w.rss[1])
		vs = append(vs, verdict{
			target: "peak RSS per proxy ≤ 15 MiB at 1000 rps",
			got: fmt.Sprintf("client %.1f, server %.1f MiB (anonymous: %.1f, %.1f; the rest is the binary's mapped pages)",
				w.rss[0]/(1<<20), w.rss[1]/(1<<20), w.anon[0]/(1<<20), w.anon[1]/(1<<20)),
			verdict: judge(worstRSS <= targetRSS, spare(worstRSS/(1<<20), targetRSS/(1<<20), "MiB", 1)),
		})
	}
	tput := r.tputRows(http1)
	wt, ok := findTput(tput, "weft")
	switch {
	case r.opts.TputDuration <= 0:
		notes = append(notes, "no maximum-rate run, so the throughput targets are not judged")
	case !ok:
		notes = append(notes, "Weft's HTTP/1.1 maximum rate was not measured")
	default:
		for _, t := range []struct {
			peer string
			want float64
		}{{"nginx", targetVsNginx}, {"caddy", targetVsCaddy}} {
			v := verdict{target: fmt.Sprintf("max rps on one core ≥ %.1f× %s's", t.want, t.peer)}
			p, ok := findTput(tput, t.peer)
			if !ok {
				v.got, v.verdict = fmt.Sprintf("%.0f rps", wt.rps), t.peer+" not measured"
			} else {
				ratio := wt.rps / p.rps
				v.got = fmt.Sprintf("%.0f rps = %.2f× (%s %.0f)", wt.rps, ratio, t.peer, p.rps)
				detail := fmt.Sprintf("%.2f× to spare", ratio-t.want)
				if ratio < t.want {
					detail = fmt.Sprintf("%.0f%% short of %.0f rps", 100*(1-ratio/t.want), t.want*p.rps)
				}
				v.verdict = judge(ratio >= t.want, detail)
			}
			vs = append(vs, v)
		}
	}
	return vs, strings.Join(notes, "; ")
}

// lowerThanPeers judges "Weft's values are each below every measured
// peer's": pick chooses the values compared, show prints them.
func (r *report) lowerThanPeers(rows []row, w row, target string, pick func(row) []float64,
	show func([]float64) string, judge func(bool, string) string) verdict {
	v := verdict{target: target, got: show(pick(w))}
	var beaten, peers []string
	for _, name := range peerNames {
		p, ok := findRow(rows, name)
		if !ok {
			continue
		}
		peers = append(peers, name)
		mine, theirs := pick(w), pick(p)
		for i := range mine {
			if !(mine[i] < theirs[i]) {
				beaten = append(beaten, fmt.Sprintf("%s (%s)", name, show(theirs)))
				break
			}
		}
	}
	switch {
	case len(peers) == 0:
		v.verdict = "no peer measured"
	case len(beaten) == 0:
		v.verdict = judge(true, "lowest of "+strings.Join(append([]string{"weft"}, peers...), ", "))
	default:
		v.verdict = judge(false, "not below "+strings.Join(beaten, "; "))
	}
	return v
}

// spare says how far got is under (or over) an upper limit, in unit
// after multiplying both by scale.
func spare(got, limit float64, unit string, scale float64) string {
	if math.IsNaN(got) {
		return "not measured"
	}
	d := (limit - got) * scale
	if d >= 0 {
		return fmt.Sprintf("%.3f %s to spare", d, unit)
	}
	return fmt.Sprintf("%.3f %s over (%.2f× the limit)", -d, unit, got/limit)
}

// ms prints seconds as milliseconds.
func ms(s float64) string {
	if math.IsNaN(s) {
		return "–"
	}
	return fmt.Sprintf("%.3f", s*1e3)
}

// wakeUps tells each proxied configuration's context switches per request,
// client and server: at a fixed rate most of a request's CPU is the
// switches in and out of sleep around it, which no proxy that sleeps
// between a request and its answer gets below two.
func wakeUps(rows []row) string {
	var parts []string
	for _, x := range rows {
		if !x.proxied || !x.measured || math.IsNaN(x.switches[0]) {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.1f / %.1f", x.config, x.switches[0], x.switches[1]))
	}
	if len(parts) == 0 {
		return "context switches per request not measured"
	}
	return "context switches per request, client / server: " + strings.Join(parts, ", ")
}
