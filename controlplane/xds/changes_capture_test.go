package xds

import (
	"net/netip"
	"testing"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
)

// A transparent proxy reaches every service through its capture listener:
// it reads every service's workloads and every VIP; other proxies do not
// read VIPs.
func TestTransparentProxyReadsEveryServiceAndVIP(t *testing.T) {
	catalog := translate.ServiceKey{Namespace: "shop", Name: "catalog"}
	transparent := xdsmeta.Node{Service: "web", Namespace: "shop", Mode: xdsmeta.ModeTransparent}
	explicit := xdsmeta.Node{Service: "web", Namespace: "shop", Inbound: "127.0.0.1:1"}
	a := &translate.Input{TrustDomain: "weft.local"}

	b := *a
	b.Workloads = map[translate.ServiceKey][]*meshv1.Workload{catalog: {{Id: "catalog-1"}}}
	c := diffInputs(a, &b)
	if !c.affect(transparent) {
		t.Error("a workload of another service does not reach the transparent proxy")
	}
	if c.affect(explicit) {
		t.Error("a workload of a service it does not call reaches the explicit proxy")
	}

	v := *a
	v.VIPs = map[translate.ServiceKey]netip.Addr{catalog: netip.MustParseAddr("240.240.0.1")}
	c = diffInputs(a, &v)
	if !c.affect(transparent) {
		t.Error("a new VIP does not reach the transparent proxy")
	}
	if c.affect(explicit) {
		t.Error("a new VIP reaches the explicit proxy")
	}
	same := v
	if c := diffInputs(&v, &same); c.affect(transparent) {
		t.Error("an unchanged input recomputes the transparent proxy")
	}
}
