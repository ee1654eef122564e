package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeReport is two repeats of HTTP/1.1 c16 and a maximum-rate run.
func fakeReport() *report {
	o := DefaultOptions()
	o.Protocols, o.Conns, o.Repeats = []protocol{http1}, []int{16}, 2
	o.Configs = []string{"direct", "weft", "nginx", "caddy"}
	r := &report{opts: o, start: time.Unix(0, 0), end: time.Unix(600, 0), machine: "nproc 2, test CPU",
		configs: o.Configs, notRun: map[string]string{}}
	lat := map[string][2][3]float64{ // per repeat, p50/p90/p99 in ms
		"direct": {{0.10, 0.20, 0.30}, {0.12, 0.22, 0.40}},
		"weft":   {{0.20, 0.30, 0.50}, {0.24, 0.34, 0.60}},
		"nginx":  {{0.25, 0.45, 0.70}, {0.27, 0.45, 0.80}},
		"caddy":  {{0.45, 0.75, 3.30}, {0.47, 0.80, 3.50}},
	}
	for _, c := range o.Configs {
		for rep := range 2 {
			s := sample{config: c, proto: http1, conns: 16, repeat: rep + 1, qps: 1000, requests: 20000}
			for i := range 3 {
				s.lat[i] = lat[c][rep][i] / 1e3
			}
			if c != "direct" {
				s.cpu = [2]float64{0.04, 0.03}
				s.rss = [2]int64{12 << 20, 11 << 20}
				s.switches = [2]float64{2.4 + float64(rep), 2.5}
			}
			r.samples = append(r.samples, s)
		}
	}
	for c, rps := range map[string]float64{"direct": 50000, "weft": 20000, "nginx": 15000, "caddy": 4000} {
		r.tputs = append(r.tputs, tputSample{config: c, proto: http1, repeat: 1, rps: rps, requests: int64(rps) * 30})
	}
	return r
}

func TestRowsAddedLatency(t *testing.T) {
	rows := fakeReport().rows(cell{http1, 16})
	w, ok := findRow(rows, "weft")
	if !ok {
		t.Fatal("no weft row")
	}
	// Added is the median of per-repeat differences: (0.10, 0.12) → 0.11 ms at p50.
	for i, want := range []float64{0.11, 0.11, 0.20} {
		if got := w.added[i] * 1e3; math.Abs(got-want) > 1e-9 {
			t.Errorf("added[%d] = %.4f ms, want %.4f", i, got, want)
		}
	}
	if d, _ := findRow(rows, "direct"); d.proxied {
		t.Error("direct counted as proxied")
	}
}

func TestTargets(t *testing.T) {
	vs, note := fakeReport().targets()
	if note != "" {
		t.Errorf("note %q", note)
	}
	got, gotValue := map[string]string{}, map[string]string{}
	for _, v := range vs {
		got[v.target], gotValue[v.target] = v.verdict, v.got
	}
	// Each proxied configuration's wake-ups per request, medians over repeats.
	if cpu, want := gotValue["CPU per proxy ≤ 0.050 s per 1000 requests (vCPU at 1000 rps)"],
		"client 0.040, server 0.030 (context switches per request, client / server: weft 2.9 / 2.5, nginx 2.9 / 2.5, caddy 2.9 / 2.5)"; cpu != want {
		t.Errorf("CPU row %q, want %q", cpu, want)
	}
	for target, want := range map[string]string{
		"added latency p90 ≤ 0.150 ms":                                               "**met**, 0.040 ms to spare",
		"added latency p99 ≤ 0.250 ms":                                               "**met**, 0.050 ms to spare",
		"added latency p90 and p99 lower than every peer":                            "**met**, lowest of weft, nginx, caddy",
		"max rps on one core ≥ 1.2× nginx's":                                         "**met**, 0.13× to spare",
		"max rps on one core ≥ 3.0× caddy's":                                         "**met**, 2.00× to spare",
		"peak RSS per proxy ≤ 15 MiB at 1000 rps":                                    "**met**, 3.000 MiB to spare",
		"CPU per proxy lower than every peer's (client vs client, server vs server)": "**not met**, not below nginx (client 0.040, server 0.030 s); caddy (client 0.040, server 0.030 s)",
	} {
		if got[target] != want {
			t.Errorf("%s: got %q, want %q", target, got[target], want)
		}
	}
}

func TestWriteResultsKeepsOptimisations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "RESULTS.md")
	kept := optimisationsHeading + "\n\n| change | metric | before | after |\n|---|---|---|---|\n| pooled buffers (abc123) | CPU client | 0.09 | 0.05 |\n"
	old := "# old results\n\n## Targets\nold table\n\n" + kept + "\n## Trailing\nnot kept\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeResults(path, fakeReport()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	doc := string(b)
	if !strings.Contains(doc, "| pooled buffers (abc123) | CPU client | 0.09 | 0.05 |") {
		t.Errorf("hand-written section lost:\n%s", doc)
	}
	if strings.Contains(doc, "old table") || strings.Contains(doc, "not kept") {
		t.Errorf("old results kept:\n%s", doc)
	}
	var md bytes.Buffer
	fakeReport().markdown(&md)
	for _, want := range []string{"| weft | 0.220 | 0.320 | 0.550 | +0.110 | +0.110 | +0.200 |", "| nginx | 15000 | – | 0 |", "nproc 2, test CPU"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
}

// TestSpreadOverRepeats: with more than one repeat, the report gives the
// lowest and highest of each figure whose median it quotes.
func TestSpreadOverRepeats(t *testing.T) {
	r := fakeReport()
	// A third repeat of weft only, slower and dearer: the medians move
	// less than the ranges.
	s := sample{config: "weft", proto: http1, conns: 16, repeat: 3, qps: 1000, requests: 20000,
		lat: [3]float64{0.90e-3, 1.0e-3, 2.0e-3}, cpu: [2]float64{0.08, 0.07}, rss: [2]int64{12 << 20, 11 << 20}}
	r.samples = append(r.samples, s)
	r.opts.Repeats = 3
	var md bytes.Buffer
	r.markdown(&md)
	doc := md.String()
	// Repeat 3 has no direct run beside it, so its added latency is not
	// counted; its CPU is.
	for _, want := range []string{
		"## Spread over repeats",
		"| HTTP/1.1 | 16 | weft | +0.100 … +0.120 | +0.100 … +0.120 | +0.200 … +0.200 | 0.040 … 0.080 | 0.030 … 0.070 |",
		"| HTTP/1.1 | weft | 20000 … 20000 |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q:\n%s", want, doc)
		}
	}
	if strings.Contains(doc, "| HTTP/1.1 | 16 | direct |") {
		t.Error("direct has a spread row; it has no proxies to spread")
	}

	one := fakeReport()
	one.opts.Repeats = 1
	md.Reset()
	one.markdown(&md)
	if strings.Contains(md.String(), "## Spread over repeats") {
		t.Error("a single repeat has a spread section")
	}
}

// TestContextSwitches reads this test's own process group: its threads
// have switched off their CPU, more so after a sleep.
func TestContextSwitches(t *testing.T) {
	pgid := syscall.Getpgrp()
	before := contextSwitches(pgid)
	time.Sleep(10 * time.Millisecond)
	after := contextSwitches(pgid)
	if before == 0 || after <= before {
		t.Fatalf("context switches %d, then %d after a sleep", before, after)
	}
}
