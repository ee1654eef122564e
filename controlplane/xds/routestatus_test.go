package xds

import (
	"fmt"
	"slices"
	"testing"
	"time"

	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"

	"github.com/weftmesh/weft/api/xdsmeta"
)

func TestRouteStatusOf(t *testing.T) {
	current := map[string]string{resource.ListenerType: "l2", resource.RouteType: "r2", resource.ClusterType: "c2"}
	old := map[string]string{resource.ListenerType: "l2", resource.RouteType: "r1", resource.ClusterType: "c2"}
	client := xdsmeta.Node{Service: "web", Namespace: "shop", Upstreams: []xdsmeta.Upstream{{Service: "payments", Namespace: "shop"}}}
	gateway := xdsmeta.Node{Service: "gw", Namespace: "edge", HTTPProxy: "127.0.0.1:8080"}
	other := xdsmeta.Node{Service: "batch", Namespace: "shop", Upstreams: []xdsmeta.Upstream{{Service: "catalog", Namespace: "shop"}}}
	views := []routeView{
		{meta: client, versions: current, acked: current},
		{meta: gateway, versions: current, acked: old},                                                                         // pending
		{meta: client, versions: current, acked: old, nack: &NACK{TypeURL: resource.RouteType, Version: "r2", Message: "bad"}}, // rejected now
		{meta: client, versions: current, acked: old, nack: &NACK{TypeURL: resource.RouteType, Version: "r0", Message: "old"}}, // an older rejection
		{meta: client}, // nothing pushed yet
		{meta: other, versions: current, acked: old}, // does not read the Route
	}
	want, applied, nacks := routeStatusOf("shop", "payments", views)
	if want != 5 || applied != 1 || !slices.Equal(nacks, []string{"bad"}) {
		t.Errorf("routeStatusOf = %d, %d, %q; want 5, 1, [bad]", want, applied, nacks)
	}
	if want, applied, nacks := routeStatusOf("other", "payments", views); want != 1 || applied != 0 || nacks != nil {
		t.Errorf("routeStatusOf(other namespace) = %d, %d, %q; want only the HTTP proxy", want, applied, nacks)
	}
}

// TestRouteStatus follows a Route to a real proxy stream: pending until the
// proxy ACKs the new RouteConfiguration, applied when it does, rejected
// when it NACKs the next one, and counted again once a later push is ACKed.
func TestRouteStatus(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	in := meshInput(h.ca)
	h.srv.Update(in)
	web := h.svid("default", "web")
	a := h.open(&web, webNode())
	syncWeb(a)
	a.send(resource.RouteType, "", "", "outbound|payments.default")
	rds1 := a.recv()
	a.ack(rds1)

	current := func() string {
		want, applied, nacks := h.srv.RouteStatus("default", "payments")
		return fmt.Sprintf("%d/%d %q", applied, want, nacks)
	}
	eventually(t, "the route applied", func() bool { return current() == `1/1 []` })
	if got := fmt.Sprint(h.srv.RouteStatus("default", "web")); got != "0 0 []" {
		t.Errorf("RouteStatus(web) = %s, want no proxy: none calls web", got)
	}

	h.srv.Update(withRoute(in, 3*time.Second))
	rds2 := a.recv()
	if got := current(); got != `0/1 []` {
		t.Errorf("before the ACK: %s, want 0/1 []", got)
	}
	a.ack(rds2)
	eventually(t, "the new route applied", func() bool { return current() == `1/1 []` })

	h.srv.Update(withRoute(in, 4*time.Second))
	rds3 := a.recv()
	if err := a.s.Send(&discoverypb.DiscoveryRequest{
		TypeUrl: resource.RouteType, VersionInfo: rds2.GetVersionInfo(), ResponseNonce: rds3.GetNonce(),
		ResourceNames: []string{"outbound|payments.default"},
		ErrorDetail:   &status.Status{Message: "timeout: not supported"},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the NACK reported", func() bool { return current() == `0/1 ["timeout: not supported"]` })

	// The next change is accepted: the old NACK no longer counts.
	h.srv.Update(withRoute(in, 5*time.Second))
	a.ack(a.recv())
	eventually(t, "the next route applied", func() bool { return current() == `1/1 []` })
}
