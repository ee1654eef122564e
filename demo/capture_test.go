package demo

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/podnet"
)

func TestCaptureRequirementsMessages(t *testing.T) {
	have := func(missing ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			for _, m := range missing {
				if m == name {
					return "", exec.ErrNotFound
				}
			}
			return "/usr/sbin/" + name, nil
		}
	}
	for _, c := range []struct {
		name    string
		env     podnet.Env
		want    []string
		notWant []string
	}{
		{name: "all there", env: podnet.Env{GOOS: "linux", LookPath: have()}},
		{name: "not root", env: podnet.Env{GOOS: "linux", EUID: 1000, LookPath: have()},
			want:    []string{"--capture needs root: it creates network namespaces and iptables rules; run with sudo, or drop --capture"},
			notWant: []string{"PATH"}},
		{name: "no ip", env: podnet.Env{GOOS: "linux", LookPath: have("ip")},
			want:    []string{"--capture needs the ip command from iproute2, not found in PATH: install iproute2 (Debian/Ubuntu: apt-get install iproute2", "or drop --capture"},
			notWant: []string{"root", "iptables"}},
		{name: "no iptables", env: podnet.Env{GOOS: "linux", LookPath: have("iptables", "iptables-restore", "iptables-save")},
			want:    []string{"--capture needs the iptables, iptables-restore, iptables-save commands from iptables, not found in PATH: install iptables (Debian/Ubuntu: apt-get install iptables"},
			notWant: []string{"root", "iproute2"}},
		{name: "only iptables-restore missing", env: podnet.Env{GOOS: "linux", LookPath: have("iptables-restore")},
			want: []string{"the iptables-restore command from iptables"}},
		{name: "everything missing", env: podnet.Env{GOOS: "linux", EUID: 1000, LookPath: have("ip", "iptables", "iptables-restore", "iptables-save")},
			want: []string{"needs root", "iproute2", "apt-get install iptables"}},
		{name: "not linux", env: podnet.Env{GOOS: "darwin", EUID: 1000, LookPath: have("ip")},
			want:    []string{"--capture needs Linux", "this is darwin", "drop --capture"},
			notWant: []string{"root", "iproute2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CaptureRequirements(c.env)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("want no error, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want an error naming %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%s", w, err)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error mentions %q:\n%s", w, err)
				}
			}
		})
	}
}

// TestCaptureTopology: with capture, apps call their peers by mesh name and
// the sidecars take no --upstream ports.
func TestCaptureTopology(t *testing.T) {
	for _, w := range topology(20, true) {
		if len(w.upstreams) != 0 {
			t.Errorf("%s has upstream ports %v in capture mode", w.name(), w.upstreams)
		}
		for _, a := range w.appArgs {
			if strings.Contains(a, "127.0.1.") {
				t.Errorf("%s calls a loopback address in capture mode: %v", w.name(), w.appArgs)
			}
		}
	}
	args := map[string]string{}
	for _, w := range topology(20, true) {
		args[w.app] = strings.Join(w.appArgs, " ")
	}
	if want := "--catalog http://catalog:8080 --ledger ledger:8080 --cache cache:8080"; args["frontend"] != want {
		t.Errorf("frontend args %q, want %q", args["frontend"], want)
	}
	if !strings.HasPrefix(args["loadgen"], "--target http://frontend:8080/") {
		t.Errorf("loadgen args %q", args["loadgen"])
	}
}
