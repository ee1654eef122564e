package xdsmeta

import "testing"

func TestProxylessNodeRoundTrip(t *testing.T) {
	n := Node{ID: ProxylessNodeID("catalog", "shop", "127.0.0.1:50051"), Service: "catalog", Namespace: "shop",
		Inbound: "127.0.0.1:50051", Proxyless: true}
	p := n.ToProto()
	if !IsProxyless(p) {
		t.Fatal("IsProxyless = false for a proxyless node")
	}
	got, err := NodeFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Proxyless || got.ID != "catalog.shop@grpc/127.0.0.1:50051" || got.Inbound != n.Inbound {
		t.Errorf("round trip gave %+v", got)
	}
	n.Proxyless = false
	if IsProxyless(n.ToProto()) {
		t.Error("IsProxyless = true for a proxy")
	}
	if got := ServerListener("127.0.0.1:50051"); got != "grpc/server?xds.resource.listening_address=127.0.0.1:50051" {
		t.Errorf("ServerListener = %q", got)
	}
}
