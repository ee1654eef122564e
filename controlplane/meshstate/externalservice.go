package meshstate

import (
	"maps"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/translate"
)

// kindExternalService is the lowercase kind of ExternalService in resource keys.
const kindExternalService = "externalservice"

// handleExternalService applies a change of the ExternalService namespace/name.
func (w *Watcher) handleExternalService(b *batch, key, namespace, name string, value []byte, modRev int64, deleted bool) {
	k := translate.ServiceKey{Namespace: namespace, Name: name}
	if deleted {
		b.deleteExternalService(k)
		return
	}
	obj, err := store.DecodeObject(value, modRev)
	spec, ok := specOf[*v1alpha1.ExternalServiceSpec](obj)
	if err != nil || !ok {
		w.warnOnce(key, "ignoring undecodable ExternalService", "key", key, "err", err)
		b.deleteExternalService(k)
		return
	}
	spec.Default()
	b.externalServices()[k] = spec
	b.changed = true
}

func (b *batch) deleteExternalService(key translate.ServiceKey) {
	if _, ok := b.next.ExternalServices[key]; !ok {
		return
	}
	delete(b.externalServices(), key)
	b.changed = true
}

// externalServices returns the batch's own ExternalServices map, cloning it
// on first use.
func (b *batch) externalServices() map[translate.ServiceKey]*v1alpha1.ExternalServiceSpec {
	if !b.ownExternal {
		b.next.ExternalServices = maps.Clone(b.next.ExternalServices)
		if b.next.ExternalServices == nil {
			b.next.ExternalServices = make(map[translate.ServiceKey]*v1alpha1.ExternalServiceSpec)
		}
		b.ownExternal = true
	}
	return b.next.ExternalServices
}
