package proxycmd

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
)

func TestSetConcurrency(t *testing.T) {
	t.Cleanup(func() { runtime.GOMAXPROCS(runtime.NumCPU()) })
	t.Setenv("GOMAXPROCS", "")
	if err := setConcurrency(1); err != nil || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("setConcurrency(1): %v, GOMAXPROCS %d", err, runtime.GOMAXPROCS(0))
	}
	if err := setConcurrency(0); err != nil || runtime.GOMAXPROCS(0) != runtime.NumCPU() {
		t.Fatalf("setConcurrency(0): %v, GOMAXPROCS %d, want %d", err, runtime.GOMAXPROCS(0), runtime.NumCPU())
	}
	if err := setConcurrency(-1); err == nil || !strings.Contains(err.Error(), "--concurrency -1") {
		t.Fatalf("setConcurrency(-1) = %v", err)
	}
	// The environment wins.
	t.Setenv("GOMAXPROCS", "1")
	runtime.GOMAXPROCS(1)
	if err := setConcurrency(2); err != nil || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("with GOMAXPROCS set: %v, GOMAXPROCS %d", err, runtime.GOMAXPROCS(0))
	}
}

func TestFlagsMatchTheContract(t *testing.T) {
	cmd := Proxy()
	for _, name := range []string{"service", "namespace", "version", "control", "token", "token-file", "ca-file",
		"app", "inbound", "admin", "upstream", "http-proxy"} {
		if cmd.Flags.Lookup(name) == nil {
			t.Errorf("flag --%s missing", name)
		}
	}
}

func TestExecute(t *testing.T) {
	t.Setenv("GOGC", "") // or the flag is not looked at
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := execute(context.Background(), Proxy(), "weft-proxy", args, &out, &out)
		return out.String(), err
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out, err := run(args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for _, want := range []string{"Usage:\n  weft-proxy [flags]\n", "iptables", "--control string", "--upstream stringArray"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: help lacks %q:\n%s", args, want, out)
			}
		}
	}
	out, err := run("iptables", "--help")
	if err != nil || !strings.Contains(out, "Usage:\n  weft-proxy iptables [flags]\n") || !strings.Contains(out, "--capture-dns") {
		t.Errorf("iptables --help: %v\n%s", err, out)
	}
	for args, want := range map[string]string{
		"--no-such-flag":        "unknown flag: --no-such-flag (see weft-proxy --help)",
		"stray":                 `unexpected argument "stray": weft-proxy takes flags only`,
		"iptables stray":        `unexpected argument "stray": weft-proxy iptables takes flags only`,
		"--concurrency lots":    `invalid argument "lots" for "--concurrency"`,
		"--service a --mode no": `--mode: unknown proxy mode "no"`,
		"--gc-percent 0":        "--gc-percent: 0 is not between 1 and 10000",
	} {
		if _, err := run(strings.Fields(args)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}
	var stderr bytes.Buffer
	if code := exitCode(context.Background(), Proxy(), "weft-proxy", []string{"stray"}, &stderr, &stderr); code != 1 || !strings.HasPrefix(stderr.String(), "error: ") {
		t.Errorf("exitCode: exit %d, stderr %q", code, stderr.String())
	}
}
