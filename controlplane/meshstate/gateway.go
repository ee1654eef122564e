package meshstate

import (
	"maps"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/translate"
)

// kindGateway is the lowercase kind of Gateway in resource keys.
const kindGateway = "gateway"

// handleGateway applies a change of the Gateway namespace/name.
func (w *Watcher) handleGateway(b *batch, key, namespace, name string, value []byte, modRev int64, deleted bool) {
	gk := translate.ServiceKey{Namespace: namespace, Name: name}
	if deleted {
		b.deleteGateway(gk)
		return
	}
	obj, err := store.DecodeObject(value, modRev)
	spec, ok := specOf[*v1alpha1.GatewaySpec](obj)
	if err != nil || !ok {
		w.warnOnce(key, "ignoring undecodable Gateway", "key", key, "err", err)
		b.deleteGateway(gk)
		return
	}
	spec.Default()
	b.ownGatewayMaps()
	b.next.Gateways[gk] = spec
	b.changed = true
}

func (b *batch) deleteGateway(gk translate.ServiceKey) {
	if _, ok := b.next.Gateways[gk]; !ok {
		return
	}
	b.ownGatewayMaps()
	delete(b.next.Gateways, gk)
	b.changed = true
}

// putGatewayRoute stores a Route that attaches to gateways.
func (b *batch) putGatewayRoute(rk objectName, spec *v1alpha1.RouteSpec) {
	b.ownGatewayMaps()
	b.next.GatewayRoutes[translate.ServiceKey{Namespace: rk.namespace, Name: rk.name}] = spec
	b.changed = true
}

func (b *batch) deleteGatewayRoute(rk objectName) {
	k := translate.ServiceKey{Namespace: rk.namespace, Name: rk.name}
	if _, ok := b.next.GatewayRoutes[k]; !ok {
		return
	}
	b.ownGatewayMaps()
	delete(b.next.GatewayRoutes, k)
	b.changed = true
}

// ownGatewayMaps clones the Gateways and GatewayRoutes maps on first use.
func (b *batch) ownGatewayMaps() {
	if b.ownGateways {
		return
	}
	b.next.Gateways = maps.Clone(b.next.Gateways)
	if b.next.Gateways == nil {
		b.next.Gateways = make(map[translate.ServiceKey]*v1alpha1.GatewaySpec)
	}
	b.next.GatewayRoutes = maps.Clone(b.next.GatewayRoutes)
	if b.next.GatewayRoutes == nil {
		b.next.GatewayRoutes = make(map[translate.ServiceKey]*v1alpha1.RouteSpec)
	}
	b.ownGateways = true
}
