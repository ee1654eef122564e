package meshstate

import (
	"cmp"
	"maps"
	"slices"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/translate"
)

// kindAccessPolicy is the lowercase kind of AccessPolicy in resource keys.
const kindAccessPolicy = "accesspolicy"

// handleAccessPolicy applies a change of the AccessPolicy namespace/name.
func (w *Watcher) handleAccessPolicy(b *batch, key, namespace, name string, value []byte, modRev int64, deleted bool) {
	if deleted {
		b.deleteAccessPolicy(namespace, name)
		return
	}
	obj, err := store.DecodeObject(value, modRev)
	spec, ok := specOf[*v1alpha1.AccessPolicySpec](obj)
	if err != nil || !ok {
		w.warnOnce(key, "ignoring undecodable AccessPolicy", "key", key, "err", err)
		b.deleteAccessPolicy(namespace, name)
		return
	}
	spec.Default()
	b.putAccessPolicy(namespace, translate.AccessPolicy{Name: name, Revision: modRev, Spec: spec})
}

// putAccessPolicy stores an AccessPolicy under the service it guards, in
// name order, replacing the policy of that name wherever it was.
func (b *batch) putAccessPolicy(namespace string, p translate.AccessPolicy) {
	b.deleteAccessPolicy(namespace, p.Name)
	key := translate.ServiceKey{Namespace: namespace, Name: p.Spec.Service}
	m := b.accessPolicies()
	list := slices.Clone(m[key])
	i, _ := slices.BinarySearchFunc(list, p.Name, func(a translate.AccessPolicy, name string) int { return cmp.Compare(a.Name, name) })
	m[key] = slices.Insert(list, i, p)
	b.changed = true
}

// deleteAccessPolicy drops the AccessPolicy namespace/name, whichever
// service it guarded.
func (b *batch) deleteAccessPolicy(namespace, name string) {
	for key, list := range b.next.AccessPolicies {
		if key.Namespace != namespace {
			continue
		}
		i := slices.IndexFunc(list, func(p translate.AccessPolicy) bool { return p.Name == name })
		if i < 0 {
			continue
		}
		m := b.accessPolicies()
		if len(list) == 1 {
			delete(m, key)
		} else {
			m[key] = slices.Delete(slices.Clone(list), i, i+1)
		}
		b.changed = true
		return
	}
}

// accessPolicies returns the batch's own AccessPolicies map, cloning it on
// first use; its slices are replaced, never modified.
func (b *batch) accessPolicies() map[translate.ServiceKey][]translate.AccessPolicy {
	if !b.ownAccess {
		b.next.AccessPolicies = maps.Clone(b.next.AccessPolicies)
		if b.next.AccessPolicies == nil {
			b.next.AccessPolicies = make(map[translate.ServiceKey][]translate.AccessPolicy)
		}
		b.ownAccess = true
	}
	return b.next.AccessPolicies
}
