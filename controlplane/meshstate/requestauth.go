package meshstate

import (
	"maps"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/translate"
)

// kindRequestAuth is the lowercase kind of RequestAuth in resource keys.
const kindRequestAuth = "requestauth"

// handleRequestAuth applies a change of the RequestAuth of the service
// namespace/name, whose name it bears.
func (w *Watcher) handleRequestAuth(b *batch, key, namespace, name string, value []byte, modRev int64, deleted bool) {
	sk := translate.ServiceKey{Namespace: namespace, Name: name}
	if deleted {
		b.deleteRequestAuth(sk)
		return
	}
	obj, err := store.DecodeObject(value, modRev)
	spec, ok := specOf[*v1alpha1.RequestAuthSpec](obj)
	if err != nil || !ok {
		w.warnOnce(key, "ignoring undecodable RequestAuth", "key", key, "err", err)
		b.deleteRequestAuth(sk)
		return
	}
	spec.Default()
	b.requestAuths()[sk] = spec
	b.changed = true
}

func (b *batch) deleteRequestAuth(key translate.ServiceKey) {
	if _, ok := b.next.RequestAuths[key]; !ok {
		return
	}
	delete(b.requestAuths(), key)
	b.changed = true
}

// requestAuths returns the batch's own RequestAuths map, cloning it on
// first use.
func (b *batch) requestAuths() map[translate.ServiceKey]*v1alpha1.RequestAuthSpec {
	if !b.ownRequestAuths {
		b.next.RequestAuths = maps.Clone(b.next.RequestAuths)
		if b.next.RequestAuths == nil {
			b.next.RequestAuths = make(map[translate.ServiceKey]*v1alpha1.RequestAuthSpec)
		}
		b.ownRequestAuths = true
	}
	return b.next.RequestAuths
}
