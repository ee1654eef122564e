package v1alpha1

import (
	"strings"
	"testing"
)

func TestNameRules(t *testing.T) {
	tests := []struct {
		s                        string
		dnsLabel, labelKey, name bool
	}{
		{s: "a", dnsLabel: true, labelKey: true, name: true},
		{s: "payments-v2", dnsLabel: true, labelKey: true, name: true},
		{s: "0abc", dnsLabel: true, labelKey: true, name: true},
		{s: strings.Repeat("a", 63), dnsLabel: true, labelKey: true, name: true},
		{s: strings.Repeat("a", 64)},
		{s: ""},
		{s: "-a"},
		{s: "a-"},
		{s: "Payments", labelKey: true, name: true},
		{s: "a_b", labelKey: true, name: true},
		{s: "a.b", labelKey: true, name: true},
		{s: "_a"},
		{s: "a b"},
		{s: "weft.dev/version", labelKey: true},
		{s: "Weft.dev/version"},
		{s: "weft.dev/"},
		{s: "/version"},
		{s: "a/b/c"},
		{s: strings.Repeat("a.", 126) + "a/x", labelKey: true},
		{s: strings.Repeat("a.", 127) + "a/x"},
	}
	for _, tt := range tests {
		if got := isDNSLabel(tt.s); got != tt.dnsLabel {
			t.Errorf("isDNSLabel(%q) = %v, want %v", tt.s, got, tt.dnsLabel)
		}
		if got := isLabelKey(tt.s); got != tt.labelKey {
			t.Errorf("isLabelKey(%q) = %v, want %v", tt.s, got, tt.labelKey)
		}
		if got := isLabelName(tt.s); got != tt.name {
			t.Errorf("isLabelName(%q) = %v, want %v", tt.s, got, tt.name)
		}
	}
}

func TestIsDNSName(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{s: "example.org", want: true},
		{s: "cluster.local", want: true},
		{s: "a", want: true},
		{s: strings.Repeat("a.", 127) + "a", want: true}, // 255 characters
		{s: strings.Repeat("a.", 127) + "ab"},            // 256
		{s: ""},
		{s: "."},
		{s: "a..b"},
		{s: ".a"},
		{s: "a."},
		{s: "A.org"},
		{s: "a_b.org"},
		{s: strings.Repeat("a", 64) + ".org"},
	}
	for _, tt := range tests {
		if got := isDNSName(tt.s, maxTrustDomainLength); got != tt.want {
			t.Errorf("isDNSName(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: `"90m"`, want: `"1h30m"`},
		{in: `"0s"`, want: `"0s"`},
		{in: `"1.5s"`, want: `"1.5s"`},
		{in: `"soon"`, wantErr: `invalid duration "soon" (want for example "30s", "5m", "24h")`},
		{in: `30`, wantErr: `duration must be a string such as "30s": json: cannot unmarshal number into Go value of type string`},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalJSON([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("UnmarshalJSON(%s) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("UnmarshalJSON(%s): %v", tt.in, err)
			continue
		}
		if got, _ := d.MarshalJSON(); string(got) != tt.want {
			t.Errorf("UnmarshalJSON(%s) then MarshalJSON = %s, want %s", tt.in, got, tt.want)
		}
	}
}
