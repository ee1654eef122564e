package proxy

import (
	"testing"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/dns"
)

func TestDNSDefaults(t *testing.T) {
	for _, tc := range []struct {
		mode xdsmeta.ProxyMode
		flag string
		want string
	}{
		{xdsmeta.ModeTransparent, "", dns.DefaultAddr},
		{xdsmeta.ModeTransparent, "off", ""},
		{xdsmeta.ModeTransparent, "127.0.0.1:53", "127.0.0.1:53"},
		{xdsmeta.ModeExplicit, "", ""},
		{"", "127.0.0.2:5353", "127.0.0.2:5353"},
	} {
		o := Options{Mode: tc.mode, DNS: tc.flag}
		o.Default()
		if o.DNS != tc.want {
			t.Errorf("mode %q --dns %q: DNS %q, want %q", tc.mode, tc.flag, o.DNS, tc.want)
		}
	}
}
