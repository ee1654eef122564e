package apps

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// summaryRE picks the counts out of a loadgen summary line.
var summaryRE = regexp.MustCompile(`(\d+) req/s, (\d+) ok, (\d+) failed(?: \(([^)]*)\))?(?:, (\d+) skipped[^,]*)?(?:, versions (.*))?$`)

type summary struct {
	ok, failed, skipped int
	failures, versions  string
}

func parseSummary(t *testing.T, line string) summary {
	t.Helper()
	m := summaryRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("not a summary line: %q", line)
	}
	atoi := func(s string) int {
		n, _ := strconv.Atoi(s)
		return n
	}
	return summary{ok: atoi(m[2]), failed: atoi(m[3]), failures: m[4], skipped: atoi(m[5]), versions: m[6]}
}

// TestLoadgenCounts runs loadgen against a frontend stand-in that answers
// v1, v2 and 502 in turn, and checks its totals against what was served.
func TestLoadgenCounts(t *testing.T) {
	var (
		mu     sync.Mutex
		served = map[string]int{}
	)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		kind := []string{"v1", "v2", "fail"}[(served["v1"]+served["v2"]+served["fail"])%3]
		served[kind]++
		mu.Unlock()
		if kind == "fail" {
			writeJSON(w, http.StatusBadGateway, frontError{Failed: "catalog", Error: "catalog: 503"})
			return
		}
		var page frontPage
		page.Catalog.Version = kind
		writeJSON(w, http.StatusOK, page)
	}))
	defer target.Close()

	app := launch(t, "loadgen", "--target", target.URL, "--rps", "100",
		"--duration", "1s", "--report", "200ms")
	total := app.out.wait(t, "total over") // it stops by itself
	if err := app.stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}

	got := parseSummary(t, total)
	mu.Lock()
	want := summary{
		ok:       served["v1"] + served["v2"],
		failed:   served["fail"],
		failures: "502=" + strconv.Itoa(served["fail"]),
		versions: "v1=" + strconv.Itoa(served["v1"]) + " v2=" + strconv.Itoa(served["v2"]),
	}
	mu.Unlock()
	if got != want {
		t.Errorf("final summary %q\n parsed %+v\n served %+v", total, got, want)
	}
	// The ticker may lose ticks on a busy machine, but not most of them.
	if n := got.ok + got.failed; n < 30 || n > 101 {
		t.Errorf("sent %d requests in 1s at 100 req/s", n)
	}
	if n := app.out.count("req/s"); n < 3 { // start line, an interval, the total
		t.Errorf("%d lines mention req/s, want an interval report too:\n%s", n, app.out)
	}
}

// TestLoadgenTimeoutsAndConcurrency checks that a hanging target counts as
// errors within --timeout and that ticks beyond --concurrency are skipped.
func TestLoadgenTimeoutsAndConcurrency(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer target.Close()

	app := launch(t, "loadgen", "--target", target.URL, "--rps", "50",
		"--duration", "500ms", "--timeout", "100ms", "--concurrency", "1")
	got := parseSummary(t, app.out.wait(t, "total over"))
	if got.ok != 0 || got.failed == 0 || got.failures != "error="+strconv.Itoa(got.failed) || got.skipped == 0 {
		t.Errorf("summary %+v, want only errors and some skipped", got)
	}
}

func TestTallySummary(t *testing.T) {
	tests := []struct {
		name     string
		outcomes []outcome
		skipped  int
		want     string
	}{
		{"empty", nil, 0, "0 req/s, 0 ok, 0 failed"},
		{
			"mixed",
			[]outcome{
				{status: "200", ok: true, version: "v2"},
				{status: "200", ok: true, version: "v1"},
				{status: "200", ok: true, version: "v1"},
				{status: "204", ok: true},
				{status: "502"},
				{status: "error"},
			},
			3,
			"3 req/s, 4 ok, 2 failed (502=1 error=1), 3 skipped at the concurrency limit, versions v1=2 v2=1",
		},
	}
	for _, tt := range tests {
		var tl tally
		for _, o := range tt.outcomes {
			tl.add(o)
		}
		tl.skipped = tt.skipped
		if got := tl.summary(2 * time.Second); got != tt.want {
			t.Errorf("%s: summary = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestLoadgenAgainstFrontend drives the real frontend and its dependencies,
// so loadgen's reading of versions is checked against the frontend's JSON.
func TestLoadgenAgainstFrontend(t *testing.T) {
	frontend := startFrontend(t, backends(t, "--version", "v7"))
	app := launch(t, "loadgen", "--target", "http://"+frontend.addr+"/", "--rps", "40",
		"--duration", "500ms")
	got := parseSummary(t, app.out.wait(t, "total over"))
	if got.ok == 0 || got.failed != 0 || got.versions != "v7="+strconv.Itoa(got.ok) {
		t.Errorf("summary %+v, want only successes, all from v7", got)
	}
}
