package proxycmd

import (
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
	cmd := Command()
	for _, name := range []string{"service", "namespace", "version", "control", "token", "token-file", "ca-file",
		"app", "inbound", "admin", "upstream", "http-proxy"} {
		if cmd.Flags().Lookup(name) == nil {
			t.Errorf("flag --%s missing", name)
		}
	}
}
