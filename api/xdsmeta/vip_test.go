package xdsmeta

import (
	"net/netip"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestVIPTableRoundTrip(t *testing.T) {
	want := VIPTable{"catalog.shop": netip.MustParseAddr("240.240.0.1"), "db.data": netip.MustParseAddr("10.0.0.9")}
	got, err := VIPTableFromListener(&listenerv3.Listener{Metadata: want.Metadata()})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["catalog.shop"] != want["catalog.shop"] || got["db.data"] != want["db.data"] {
		t.Fatalf("got %v, want %v", got, want)
	}
	if h := got.Hosts(); h[0] != "catalog.shop" || h[1] != "db.data" {
		t.Fatalf("Hosts = %v", h)
	}
	if tbl, err := VIPTableFromListener(&listenerv3.Listener{}); tbl != nil || err != nil {
		t.Fatalf("no metadata: %v, %v", tbl, err)
	}
}

func TestVIPTableRefusesMalformed(t *testing.T) {
	for _, v := range []*structpb.Value{structpb.NewNumberValue(1), structpb.NewStringValue("::1"), structpb.NewStringValue("x")} {
		s := &structpb.Struct{Fields: map[string]*structpb.Value{"a.b": v}}
		if _, err := VIPTableFromStruct(s); err == nil {
			t.Errorf("%v accepted", v)
		}
	}
}

func FuzzVIPTableFromStruct(f *testing.F) {
	f.Add("catalog.shop", "240.240.0.1")
	f.Fuzz(func(t *testing.T, host, ip string) {
		tbl, err := VIPTableFromStruct(&structpb.Struct{Fields: map[string]*structpb.Value{host: structpb.NewStringValue(ip)}})
		if err != nil {
			return
		}
		if a := tbl[host]; !a.Is4() {
			t.Fatalf("accepted %q -> %v", ip, a)
		}
	})
}
