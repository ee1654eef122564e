package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// demoOKLine is the demo's traffic report: requests that succeeded and failed.
var demoOKLine = regexp.MustCompile(`traffic │ .*?(\d+) ok, (\d+) failed`)

// waitDemoTraffic waits until the demo p says its mesh is ready and its
// latest traffic report counts at least ok successful requests.
func waitDemoTraffic(t *testing.T, p *proc, within time.Duration, ok int) {
	t.Helper()
	eventually(t, within, "demo traffic flowing", func() error {
		if p.exited() {
			t.Fatalf("demo exited early: %v\n%s", p.err, p.output())
		}
		out := p.output()
		if !strings.Contains(out, "mesh ready") {
			return errorf("not ready yet")
		}
		m := demoOKLine.FindAllStringSubmatch(out, -1)
		if len(m) == 0 {
			return errorf("no traffic report yet")
		}
		if n, _ := strconv.Atoi(m[len(m)-1][1]); n < ok {
			return errorf("only %d ok in the last report", n)
		}
		return nil
	})
}

// TestDemo runs `weft demo` as a user would, waits for traffic to flow
// through the mesh, presses Ctrl-C, and checks that no process it started
// is left behind.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "demo", "demo", "--dir", dir, "--rps", "20")
	waitDemoTraffic(t, p, 120*time.Second, 50)
	out := p.output()
	for _, want := range []string{"control plane up", "catalog-v1", "catalog-v2", "ledger", "cache", "frontend", "Press Ctrl-C"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	p.signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop within 60s of Ctrl-C")
	}
	if p.err != nil {
		t.Errorf("demo exited with %v", p.err)
	}
	if !strings.Contains(p.output(), "stopped") {
		t.Errorf("demo did not report stopping:\n%s", p.output())
	}
	// Both versions of catalog answered, and nothing failed.
	final := p.output()
	if !regexp.MustCompile(`v1=\d+`).MatchString(final) || !regexp.MustCompile(`v2=\d+`).MatchString(final) {
		t.Errorf("traffic did not reach both catalog versions:\n%s", final)
	}
	if orphans := processesMentioning(dir); len(orphans) > 0 {
		t.Fatalf("processes left behind after the demo stopped: %v", orphans)
	}
}

// processesMentioning lists processes whose command line contains s.
func processesMentioning(s string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}
