package xdsmeta

import (
	"net/netip"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestExternalHostTableRoundTrip(t *testing.T) {
	want := ExternalHostTable{
		"api.partner.example": {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")},
		"v6.partner.example":  {netip.MustParseAddr("2001:db8::1")},
	}
	l := &listenerv3.Listener{Metadata: VIPTable{"catalog.shop": netip.MustParseAddr("240.240.0.1")}.Metadata()}
	want.AddTo(l.Metadata)
	got, err := ExternalHostTableFromListener(l)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got["api.partner.example"]) != 2 || got["api.partner.example"][1] != want["api.partner.example"][1] ||
		got["v6.partner.example"][0] != want["v6.partner.example"][0] {
		t.Fatalf("got %v, want %v", got, want)
	}
	// The VIP table beside it is untouched.
	if vips, err := VIPTableFromListener(l); err != nil || len(vips) != 1 {
		t.Fatalf("VIP table %v %v", vips, err)
	}
	if tbl, err := ExternalHostTableFromListener(&listenerv3.Listener{}); tbl != nil || err != nil {
		t.Fatalf("no metadata: %v, %v", tbl, err)
	}
	md := VIPTable{}.Metadata()
	ExternalHostTable{}.AddTo(md)
	if _, ok := md.GetFilterMetadata()[ExternalHostsMetadataNamespace]; ok {
		t.Fatal("an empty table added metadata")
	}
}

func TestExternalHostTableRefusesMalformed(t *testing.T) {
	list := func(vs ...*structpb.Value) *structpb.Value {
		return structpb.NewListValue(&structpb.ListValue{Values: vs})
	}
	ip := structpb.NewStringValue("192.0.2.1")
	for name, tc := range map[string]struct {
		host string
		v    *structpb.Value
	}{
		"a string":       {"a.example", ip},
		"an empty list":  {"a.example", list()},
		"a number":       {"a.example", list(structpb.NewNumberValue(1))},
		"not an address": {"a.example", list(structpb.NewStringValue("a.example"))},
		"a zone":         {"a.example", list(structpb.NewStringValue("fe80::1%eth0"))},
		"a wildcard":     {"*.example", list(ip)},
		"upper case":     {"A.example", list(ip)},
		"a root dot":     {"a.example.", list(ip)},
		"no name":        {"", list(ip)},
	} {
		if _, err := ExternalHostTableFromStruct(&structpb.Struct{Fields: map[string]*structpb.Value{tc.host: tc.v}}); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
