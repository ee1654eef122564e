package proxycmd

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestModeFlag checks that --mode takes explicit, ingress and egress only,
// and that an ingress gateway refuses what only a sidecar has.
func TestModeFlag(t *testing.T) {
	run := func(args ...string) error {
		var out bytes.Buffer
		return execute(context.Background(), Proxy(), "weft-proxy", args, &out, &out)
	}
	if err := run("--mode", "sideways", "--service", "a"); err == nil || !strings.Contains(err.Error(), `--mode: unknown proxy mode "sideways"`) {
		t.Errorf("--mode sideways: %v, want it named as unknown", err)
	}
	err := run("--mode", "ingress", "--service", "ingress", "--control", "127.0.0.1:1", "--token", "x",
		"--ca-file", "/nonexistent", "--admin", "127.0.0.1:0", "--app", "127.0.0.1:1", "--listen-ip", "not-an-ip")
	for _, want := range []string{"--app is not used with --mode ingress", `--listen-ip "not-an-ip": want an IP address`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ingress with --app and a bad --listen-ip: %v, want %q", err, want)
		}
	}
}
