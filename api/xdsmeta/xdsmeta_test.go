package xdsmeta

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseUpstream(t *testing.T) {
	cases := []struct {
		in      string
		want    Upstream
		wantErr string
	}{
		{in: "payments=127.0.0.1:9001", want: Upstream{"payments", "default", "127.0.0.1:9001"}},
		{in: "payments.billing=127.0.0.1:9001", want: Upstream{"payments", "billing", "127.0.0.1:9001"}},
		{in: "payments", wantErr: "want NAME=LOCALADDR"},
		{in: "=127.0.0.1:1", wantErr: "want NAME=LOCALADDR"},
		{in: "payments=", wantErr: "want NAME=LOCALADDR"},
		{in: ".billing=127.0.0.1:1", wantErr: "SERVICE or SERVICE.NAMESPACE"},
		{in: "a.b.c=127.0.0.1:1", wantErr: "SERVICE or SERVICE.NAMESPACE"},
	}
	for _, c := range cases {
		got, err := ParseUpstream(c.in, "default")
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseUpstream(%q) = %v, %v; want error containing %q", c.in, got, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseUpstream(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestNodeRoundTrip(t *testing.T) {
	n := Node{
		ID: WorkloadID("frontend", "default", "127.0.1.6:15006"), Service: "frontend", Namespace: "default", Version: "v1",
		Inbound: "127.0.1.6:15006", App: "127.0.1.6:8080", Admin: "127.0.1.6:15000", HTTPProxy: "127.0.1.6:15080",
		Upstreams: []Upstream{{"catalog", "default", "127.0.1.6:9001"}, {"ledger", "money", "127.0.1.6:9002"}},
	}
	p := n.ToProto()
	if p.GetId() != "frontend.default@127.0.1.6:15006" || p.GetCluster() != "frontend.default" {
		t.Fatalf("node id/cluster: %q %q", p.GetId(), p.GetCluster())
	}
	got, err := NodeFromProto(p)
	if err != nil || !reflect.DeepEqual(got, n) {
		t.Fatalf("round trip:\n got %+v, %v\nwant %+v", got, err, n)
	}
	if _, err := NodeFromProto(nil); err == nil {
		t.Error("nil node accepted")
	}
	p.Id = ""
	if _, err := NodeFromProto(p); err == nil || !strings.Contains(err.Error(), "id is empty") {
		t.Errorf("empty id: %v", err)
	}
}

// FuzzParseUpstream: --upstream is user input. No panic, and an accepted
// value prints back to one that parses the same.
func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{"payments=127.0.0.1:9001", "a.b=x:1", "=", "a.=b", ".=."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUpstream(s, "default")
		if err != nil {
			return
		}
		again, err := ParseUpstream(u.String(), "other")
		if err != nil || again != u {
			t.Fatalf("ParseUpstream(%q) = %+v; String %q parses to %+v, %v", s, u, u.String(), again, err)
		}
	})
}
