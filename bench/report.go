package main

import (
	"fmt"
	"math"
	"time"
)

// report is everything one run measured.
type report struct {
	opts     Options
	start    time.Time
	end      time.Time
	machine  string
	versions []string          // of the load generator and the configurations' software
	configs  []string          // measured, in run order
	notRun   map[string]string // configuration → why it was not measured
	samples  []sample
	tputs    []tputSample
}

// failures lists every configuration that was asked for but did not carry
// its traffic cleanly, and every run that failed.
func (r *report) failures() []string {
	var out []string
	for _, name := range r.opts.Configs {
		if why, ok := r.notRun[name]; ok {
			out = append(out, fmt.Sprintf("%s: not measured: %s", name, why))
		}
	}
	for _, s := range r.samples {
		if !s.ok() {
			out = append(out, fmt.Sprintf("%s %s c%d repeat %d: %s", s.config, s.proto, s.conns, s.repeat, s.summary()))
		}
	}
	for _, s := range r.tputs {
		if !s.ok() {
			out = append(out, fmt.Sprintf("%s %s max rate repeat %d: %s", s.config, s.proto, s.repeat, s.summary()))
		}
	}
	return out
}

// cell is one load shape of the latency runs.
type cell struct {
	proto protocol
	conns int
}

// row is one configuration's medians over the repeats of one cell.
type row struct {
	config   string
	runs     int        // repeats that carried traffic cleanly
	failed   int64      // failed calls over all repeats
	errs     []string   // why repeats did not count
	lat      [3]float64 // p50, p90, p99, seconds
	added    [3]float64 // minus direct, seconds; NaN without direct
	addedLo  [3]float64 // the lowest and highest added latency over repeats
	addedHi  [3]float64
	cpu      [2]float64 // CPU seconds per 1000 requests, client and server
	cpuLo    [2]float64 // the lowest and highest over repeats
	cpuHi    [2]float64
	rss      [2]float64 // peak RSS, bytes
	anon     [2]float64 // anonymous RSS at the end of the run, bytes
	switches [2]float64 // context switches per request
	qps      float64
	proxied  bool // has proxies (not direct)
	measured bool // at least one clean repeat
}

// rows aggregates one cell: medians over the clean repeats; added latency
// is the median over repeats of (this − direct) in the same repeat, so
// each difference is taken between runs that sat side by side.
func (r *report) rows(c cell) []row {
	direct := map[int]sample{}
	for _, s := range r.samples {
		if s.config == "direct" && s.proto == c.proto && s.conns == c.conns && s.ok() {
			direct[s.repeat] = s
		}
	}
	var out []row
	for _, name := range r.configs {
		w := row{config: name, proxied: name != "direct"}
		var lat, added [3][]float64
		var cpu, rss, anon, switches [2][]float64
		var qps []float64
		for _, s := range r.samples {
			if s.config != name || s.proto != c.proto || s.conns != c.conns {
				continue
			}
			w.failed += s.failed
			if !s.ok() {
				w.errs = append(w.errs, s.summary())
				continue
			}
			w.runs++
			qps = append(qps, s.qps)
			d, hasDirect := direct[s.repeat]
			for i := range 3 {
				lat[i] = append(lat[i], s.lat[i])
				if hasDirect {
					added[i] = append(added[i], s.lat[i]-d.lat[i])
				}
			}
			for i := range 2 {
				cpu[i] = append(cpu[i], s.cpu[i])
				rss[i] = append(rss[i], float64(s.rss[i]))
				anon[i] = append(anon[i], float64(s.anon[i]))
				switches[i] = append(switches[i], s.switches[i])
			}
		}
		w.measured = w.runs > 0
		for i := range 3 {
			w.lat[i], w.added[i] = median(lat[i]), median(added[i])
			w.addedLo[i], w.addedHi[i] = bounds(added[i])
		}
		for i := range 2 {
			w.cpu[i], w.rss[i], w.anon[i] = median(cpu[i]), median(rss[i]), median(anon[i])
			w.switches[i] = median(switches[i])
			w.cpuLo[i], w.cpuHi[i] = bounds(cpu[i])
		}
		w.qps = median(qps)
		out = append(out, w)
	}
	return out
}

// tputRow is one configuration's median maximum rate for one protocol.
type tputRow struct {
	config   string
	runs     int
	failed   int64
	errs     []string
	rps      float64
	rpsLo    float64 // the lowest and highest over repeats
	rpsHi    float64
	vsHAP    float64 // rps ÷ HAProxy's; NaN without HAProxy
	measured bool
}

func (r *report) tputRows(p protocol) []tputRow {
	var out []tputRow
	hap := math.NaN()
	for _, name := range r.configs {
		w := tputRow{config: name}
		var rps []float64
		for _, s := range r.tputs {
			if s.config != name || s.proto != p {
				continue
			}
			w.failed += s.failed
			if !s.ok() {
				w.errs = append(w.errs, s.summary())
				continue
			}
			w.runs++
			rps = append(rps, s.rps)
		}
		w.measured = w.runs > 0
		w.rps = median(rps)
		w.rpsLo, w.rpsHi = bounds(rps)
		if name == "haproxy" {
			hap = w.rps
		}
		out = append(out, w)
	}
	for i := range out {
		out[i].vsHAP = out[i].rps / hap
	}
	return out
}

// findRow returns a configuration's row, if it was measured.
func findRow(rows []row, config string) (row, bool) {
	for _, w := range rows {
		if w.config == config && w.measured {
			return w, true
		}
	}
	return row{}, false
}

// findTput returns a configuration's maximum-rate row, if it was measured.
func findTput(rows []tputRow, config string) (tputRow, bool) {
	for _, w := range rows {
		if w.config == config && w.measured {
			return w, true
		}
	}
	return tputRow{}, false
}
