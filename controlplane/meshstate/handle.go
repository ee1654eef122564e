package meshstate

import (
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/translate"
)

// The lowercase kinds, as they appear in resource keys, that Input holds.
const (
	kindMesh              = "mesh"
	kindService           = "service"
	kindRoute             = "route"
	kindDestinationPolicy = "destinationpolicy"
)

// meshName is the name of the one Mesh resource.
const meshName = "default"

// handleResource applies a change of a resource key. A value that does not
// decode counts as absent, so that following the watch and reloading from
// scratch always agree.
func (w *Watcher) handleResource(b *batch, key string, value []byte, modRev int64, deleted bool) {
	kind, namespace, name, err := store.ParseResourceKey(key)
	if err != nil {
		w.warnOnce(key, "ignoring malformed resource key", "key", key)
		return
	}
	switch kind {
	case kindMesh:
		if name != meshName {
			w.warnOnce(key, "ignoring Mesh not named "+meshName, "key", key)
			return
		}
		if deleted {
			b.setMesh(defaultMesh())
			return
		}
		obj, err := store.DecodeObject(value, modRev)
		spec, ok := specOf[*v1alpha1.MeshSpec](obj)
		if err != nil || !ok {
			w.warnOnce(key, "ignoring undecodable Mesh; using defaults", "key", key, "err", err)
			b.setMesh(defaultMesh())
			return
		}
		m := *spec
		m.Default()
		b.setMesh(m)

	case kindService:
		sk := translate.ServiceKey{Namespace: namespace, Name: name}
		if deleted {
			b.deleteService(sk)
			return
		}
		obj, err := store.DecodeObject(value, modRev)
		spec, ok := specOf[*v1alpha1.ServiceSpec](obj)
		if err != nil || !ok {
			w.warnOnce(key, "ignoring undecodable Service", "key", key, "err", err)
			b.deleteService(sk)
			return
		}
		spec.Default()
		b.putService(sk, spec)

	case kindRoute:
		rk := objectName{namespace: namespace, name: name}
		if deleted {
			b.deleteRoute(rk)
			b.deleteGatewayRoute(rk)
			return
		}
		obj, err := store.DecodeObject(value, modRev)
		spec, ok := specOf[*v1alpha1.RouteSpec](obj)
		if err != nil || !ok {
			w.warnOnce(key, "ignoring undecodable Route", "key", key, "err", err)
			b.deleteRoute(rk)
			b.deleteGatewayRoute(rk)
			return
		}
		spec.Default()
		if spec.AttachesToGateways() {
			b.deleteRoute(rk)
			b.putGatewayRoute(rk, spec)
			return
		}
		b.deleteGatewayRoute(rk)
		b.putRoute(rk, spec)

	case kindDestinationPolicy:
		sk := translate.ServiceKey{Namespace: namespace, Name: name}
		if deleted {
			b.deletePolicy(sk)
			return
		}
		obj, err := store.DecodeObject(value, modRev)
		spec, ok := specOf[*v1alpha1.DestinationPolicySpec](obj)
		if err != nil || !ok {
			w.warnOnce(key, "ignoring undecodable DestinationPolicy", "key", key, "err", err)
			b.deletePolicy(sk)
			return
		}
		spec.Default()
		b.putPolicy(sk, spec)

	case kindAccessPolicy:
		w.handleAccessPolicy(b, key, namespace, name, value, modRev, deleted)

	case kindRequestAuth:
		w.handleRequestAuth(b, key, namespace, name, value, modRev, deleted)

	case kindRateLimit:
		w.handleRateLimit(b, key, namespace, name, value, modRev, deleted)

	case kindGateway:
		w.handleGateway(b, key, namespace, name, value, modRev, deleted)

	case kindExternalService:
		w.handleExternalService(b, key, namespace, name, value, modRev, deleted)

	default:
		w.warnOnce("kind/"+kind, "ignoring resources of a kind that translation does not read", "kind", kind)
	}
}

// specOf returns obj's spec as a T, if it is one.
func specOf[T v1alpha1.Spec](obj *v1alpha1.Object) (T, bool) {
	var zero T
	if obj == nil {
		return zero, false
	}
	spec, ok := obj.Spec.(T)
	return spec, ok
}

// handleEndpoint applies a change of a registered workload. As for
// resources, a value that does not decode, or disagrees with its key,
// counts as absent.
func (w *Watcher) handleEndpoint(b *batch, key string, value []byte, deleted bool) {
	namespace, service, id, err := store.ParseEndpointKey(key)
	if err != nil {
		w.warnOnce(key, "ignoring malformed endpoint key", "key", key)
		return
	}
	sk := translate.ServiceKey{Namespace: namespace, Name: service}
	if deleted {
		b.deleteWorkload(sk, id)
		return
	}
	wl, err := store.DecodeWorkload(value)
	if err == nil && (wl.GetId() != id || wl.GetService() != service || wl.GetNamespace() != namespace) {
		w.warnOnce(key, "ignoring workload that disagrees with its key", "key", key,
			"id", wl.GetId(), "service", wl.GetService(), "namespace", wl.GetNamespace())
		b.deleteWorkload(sk, id)
		return
	}
	if err != nil {
		w.warnOnce(key, "ignoring undecodable workload", "key", key, "err", err)
		b.deleteWorkload(sk, id)
		return
	}
	b.putWorkload(sk, wl)
}
