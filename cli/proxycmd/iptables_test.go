package proxycmd

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runIptables(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := execute(context.Background(), Proxy(), "weft-proxy", append([]string{"iptables"}, args...), &out, &out)
	return out.String(), err
}

// Without iptables-save (an empty PATH), a dry run shows the rules as they
// would go into an empty table, and a real run says what is missing.
func TestIptablesDryRun(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	out, err := runIptables(t, "--dry-run", "--capture-dns", "--proxy-gid", "1337", "--exclude-outbound-cidrs", "169.254.169.254")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# iptables-restore --noflush <<EOF\n*nat\n",
		"-A WEFT_OUTBOUND -m owner --uid-owner 1337 -j RETURN\n-A WEFT_OUTBOUND -m owner --gid-owner 1337 -j RETURN\n",
		"-A WEFT_OUTBOUND -d 169.254.169.254/32 -j RETURN\n",
		"-A WEFT_DNS -p udp --dport 53 -j REDIRECT --to-ports 15053\n",
		"-A PREROUTING -p tcp -j WEFT_INBOUND\n",
		"COMMIT\nEOF\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if _, err := runIptables(t); err == nil || !strings.Contains(err.Error(), "iptables-save not found") {
		t.Errorf("without iptables: %v", err)
	}
}

func TestIptablesFlagErrors(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for args, want := range map[string]string{
		"--exclude-outbound-ports 22,x":   "--exclude-outbound-ports: port \"x\"",
		"--exclude-inbound-ports 0":       "--exclude-inbound-ports: port \"0\"",
		"--exclude-outbound-cidrs ::/0":   "--exclude-outbound-cidrs: CIDR \"::/0\": only IPv4",
		"--proxy-uid -5":                  "--proxy-uid: id \"-5\"",
		"--proxy-mark lots":               "--proxy-mark \"lots\"",
		"--proxy-uid= --dry-run":          "no proxy uid, gid or mark",
		"--outbound-port 70000 --dry-run": "outbound port 70000",
	} {
		_, err := runIptables(t, strings.Fields(args)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", args, err, want)
		}
	}
}
