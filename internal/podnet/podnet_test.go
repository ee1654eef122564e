package podnet

import (
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

func lookPathWithout(missing ...string) func(string) (string, error) {
	return func(name string) (string, error) {
		for _, m := range missing {
			if name == m {
				return "", exec.ErrNotFound
			}
		}
		return "/usr/sbin/" + name, nil
	}
}

func TestCheck(t *testing.T) {
	ok := Env{GOOS: "linux", EUID: 0, LookPath: lookPathWithout()}
	if err := ok.Check(); err != nil {
		t.Fatalf("all there: %v", err)
	}
	if err := (Env{GOOS: "darwin", EUID: 0, LookPath: lookPathWithout()}).Check(); !errors.Is(err, ErrNotLinux) || !strings.Contains(err.Error(), "darwin") {
		t.Errorf("darwin: %v", err)
	}
	err := Env{GOOS: "linux", EUID: 1000, LookPath: lookPathWithout("ip", "iptables-restore")}.Check()
	if !errors.Is(err, ErrNotRoot) {
		t.Errorf("not root not reported: %v", err)
	}
	var mt *MissingToolsError
	if !errors.As(err, &mt) {
		t.Fatalf("missing tools not reported: %v", err)
	}
	if got := strings.Join(mt.Packages(), ","); got != "iproute2,iptables" {
		t.Errorf("packages %q", got)
	}
	if msg := mt.Error(); !strings.Contains(msg, "ip, iptables-restore not found") {
		t.Errorf("message %q", msg)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Prefix: "weft-demo", Subnet: netip.MustParsePrefix("10.89.0.0/24")}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if a := good.HostAddr().String(); a != "10.89.0.1" {
		t.Errorf("host address %s", a)
	}
	if a := good.hubAddr().String(); a != "10.89.0.254" {
		t.Errorf("hub address %s", a)
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Prefix: "a-very-long-prefix", Subnet: good.Subnet}, "15"},
		{Config{Prefix: "", Subnet: good.Subnet}, "plain name"},
		{Config{Prefix: "x", Subnet: netip.MustParsePrefix("8.8.8.0/24")}, "not a private range"},
		{Config{Prefix: "x", Subnet: netip.MustParsePrefix("10.89.0.1/24")}, "did you mean 10.89.0.0/24"},
		{Config{Prefix: "x", Subnet: netip.MustParsePrefix("10.89.0.0/25")}, "between /8 and /24"},
		{Config{Prefix: "x"}, "IPv4"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestLeftoversString(t *testing.T) {
	var l Leftovers
	if !l.Empty() {
		t.Fatal("zero Leftovers not empty")
	}
	l = Leftovers{Namespaces: []string{"weft-demo-hub", "weft-demo-cache"}, HostLink: "weft-demo0"}
	if got := l.String(); got != "network namespaces weft-demo-hub, weft-demo-cache; interface weft-demo0" {
		t.Errorf("%q", got)
	}
}

func TestOverlappingRoute(t *testing.T) {
	subnet := netip.MustParsePrefix("10.89.0.0/24")
	routes := `default via 192.0.2.1 dev eth0
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2
local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1
broadcast 192.0.2.255 dev eth0 table local proto kernel scope link src 192.0.2.2
unreachable 10.90.0.0/16
`
	if err := overlappingRoute(routes, subnet); err != nil {
		t.Fatalf("no overlap: %v", err)
	}
	for _, r := range []string{
		"10.0.0.0/8 via 192.0.2.1 dev eth0",
		"local 10.89.0.7 dev eth1 table local proto kernel scope host src 10.89.0.7",
		"blackhole 10.89.0.128/25",
	} {
		err := overlappingRoute(routes+r+"\n", subnet)
		if err == nil || !strings.Contains(err.Error(), "overlaps 10.89.0.0/24: pick another range") {
			t.Errorf("%q: %v", r, err)
		}
	}
}
