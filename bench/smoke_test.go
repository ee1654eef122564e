package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the echo server, as the harness's
// own binary does (see runRole).
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) != "" {
		os.Exit(runRole())
	}
	os.Exit(m.Run())
}

// TestSmoke runs the harness in smoke mode for direct and weft, plus
// HAProxy and nginx when they are installed (CI installs them), and checks
// that every configuration carried every protocol without a failed
// request. It judges no performance figure.
func TestSmoke(t *testing.T) {
	o := SmokeOptions()
	o.Configs = []string{"direct", "weft"}
	for _, peer := range []string{"haproxy", "nginx"} {
		if _, err := lookPath(peer); err != nil {
			t.Logf("%s is not installed (apt-get install %s): left out of the smoke run", peer, peer)
			continue
		}
		o.Configs = append(o.Configs, peer)
	}
	o.Duration, o.TputDuration = time.Second, time.Second
	o.Work = t.TempDir()
	o.Results = filepath.Join(o.Work, "RESULTS.md")
	o.Command = "go test ./bench -run TestSmoke"
	o.Profile = t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, o)
	if errors.Is(err, errNoLoadGenerator) {
		t.Skipf("skipped: fortio cannot be installed here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("smoke run took %s", time.Since(start).Round(100*time.Millisecond))
	for _, f := range rep.failures() {
		t.Error(f)
	}
	for _, name := range o.Configs {
		for _, p := range o.Protocols {
			if !carried(rep, name, p) {
				t.Errorf("%s: no %s run carried traffic", name, p)
			}
		}
	}
	// -profile: a CPU and a heap profile of each of the two weft proxies
	// for every latency run.
	for _, kind := range []string{"cpu", "heap"} {
		files, _ := filepath.Glob(filepath.Join(o.Profile, "weft-*-"+kind+".pprof"))
		if want := 2 * len(o.Protocols) * len(o.Conns); len(files) != want {
			t.Errorf("%d %s profiles of weft proxies, want %d: %v", len(files), kind, want, files)
		}
		for _, f := range files {
			if st, err := os.Stat(f); err != nil || st.Size() == 0 {
				t.Errorf("profile %s is empty or missing: %v", f, err)
			}
		}
	}
	if err := writeResults(o.Results, rep); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(o.Results)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### HTTP/1.1, 16 connections", "| weft |", "## What each optimisation bought", "not judged (smoke run)"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("results lack %q:\n%s", want, b)
		}
	}
}

// carried says whether a configuration has a clean run of protocol p.
func carried(rep *report, config string, p protocol) bool {
	for _, s := range rep.samples {
		if s.config == config && s.proto == p && s.ok() {
			return true
		}
	}
	return false
}
