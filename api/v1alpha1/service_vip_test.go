package v1alpha1

import (
	"strings"
	"testing"
)

func TestServiceVIP(t *testing.T) {
	for vip, want := range map[string]string{
		"":              "",
		"10.96.0.10":    "",
		"240.240.9.9":   "",
		"fd00::1":       `spec.vip: "fd00::1" is not an IPv4 address`,
		"10.0.0.300":    "is not an IPv4 address",
		"127.0.0.1":     "cannot be a virtual IP",
		"0.0.0.0":       "cannot be a virtual IP",
		"224.0.0.1":     "cannot be a virtual IP",
		"169.254.1.1":   "cannot be a virtual IP",
		"10.96.0.10/32": "is not an IPv4 address",
	} {
		s := &ServiceSpec{Ports: []ServicePort{{Port: 80}}, VIP: vip}
		s.Default()
		errs := s.Validate(NewPath("spec"))
		switch {
		case want == "" && len(errs) > 0:
			t.Errorf("vip %q: %v", vip, errs)
		case want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), want)):
			t.Errorf("vip %q: errors %v, want %q", vip, errs, want)
		}
	}
}
