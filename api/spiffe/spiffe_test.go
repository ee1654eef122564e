package spiffe

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := ID{TrustDomain: "weft.local", Namespace: "default", Service: "payments"}
	cases := []struct {
		in      string
		want    ID
		wantErr string
	}{
		{in: "spiffe://weft.local/ns/default/sa/payments", want: good},
		{in: "spiffe://weft.local/ns/weft-system/sa/weft-control", want: ID{"weft.local", "weft-system", "weft-control"}},
		{in: "https://weft.local/ns/default/sa/payments", wantErr: "not a spiffe://"},
		{in: "spiffe:///ns/default/sa/payments", wantErr: "not a spiffe://"},
		{in: "spiffe://weft.local/ns/default/sa/", wantErr: "not of the form"},
		{in: "spiffe://weft.local/ns//sa/payments", wantErr: "not of the form"},
		{in: "spiffe://weft.local/sa/payments/ns/default", wantErr: "not of the form"},
		{in: "spiffe://weft.local/ns/default/sa/payments/extra", wantErr: "not of the form"},
		{in: "spiffe://user@weft.local/ns/default/sa/payments", wantErr: "not a spiffe://"},
		{in: "spiffe://weft.local/ns/default/sa/payments?x=1", wantErr: "not a spiffe://"},
		{in: "spiffe://weft.local/ns/default/sa/payments#f", wantErr: "not a spiffe://"},
		{in: "%zz", wantErr: "parse"},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("Parse(%q) = %v, %v; want error containing %q", c.in, got, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
		if got.String() != c.in || got.URL().String() != c.in {
			t.Errorf("round trip of %q: String %q, URL %q", c.in, got.String(), got.URL())
		}
	}
	if !(ID{"td", ControlPlaneNamespace, ControlPlaneService}).IsControlPlane() || good.IsControlPlane() {
		t.Error("IsControlPlane is wrong")
	}
}

func TestFromCert(t *testing.T) {
	u := func(s string) *url.URL { v, _ := url.Parse(s); return v }
	cases := []struct {
		uris    []*url.URL
		want    string
		wantErr string
	}{
		{uris: []*url.URL{u("spiffe://td/ns/a/sa/b")}, want: "spiffe://td/ns/a/sa/b"},
		{uris: []*url.URL{u("https://example.com"), u("spiffe://td/ns/a/sa/b")}, want: "spiffe://td/ns/a/sa/b"},
		{uris: nil, wantErr: "no spiffe://"},
		{uris: []*url.URL{u("spiffe://td/ns/a/sa/b"), u("spiffe://td/ns/a/sa/c")}, wantErr: "2 spiffe:// URI SANs"},
		{uris: []*url.URL{u("spiffe://td/bad")}, wantErr: "not of the form"},
	}
	for _, c := range cases {
		got, err := FromCert(&x509.Certificate{URIs: c.uris})
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("FromCert(%v) = %v, %v; want error containing %q", c.uris, got, err, c.wantErr)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("FromCert(%v) = %v, %v; want %s", c.uris, got, err, c.want)
		}
	}
}

// FuzzParse: peer certificates carry attacker-chosen URIs. Parse must never
// panic, and whatever it accepts must print back to the same ID.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"spiffe://weft.local/ns/default/sa/payments", "spiffe://a/ns/b/sa/c", "spiffe://x", "", "spiffe://%41/ns/a/sa/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(id.String())
		if err != nil || again != id {
			t.Fatalf("Parse(%q) = %+v, but its String %q parses to %+v, %v", s, id, id.String(), again, err)
		}
	})
}
