package meshstate

import (
	"maps"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/translate"
)

// kindRateLimit is the lowercase kind of RateLimit in resource keys.
const kindRateLimit = "ratelimit"

// handleRateLimit applies a change of the RateLimit of the service
// namespace/name, whose name it bears.
func (w *Watcher) handleRateLimit(b *batch, key, namespace, name string, value []byte, modRev int64, deleted bool) {
	sk := translate.ServiceKey{Namespace: namespace, Name: name}
	if deleted {
		b.deleteRateLimit(sk)
		return
	}
	obj, err := store.DecodeObject(value, modRev)
	spec, ok := specOf[*v1alpha1.RateLimitSpec](obj)
	if err != nil || !ok {
		w.warnOnce(key, "ignoring undecodable RateLimit", "key", key, "err", err)
		b.deleteRateLimit(sk)
		return
	}
	spec.Default()
	b.rateLimits()[sk] = spec
	b.changed = true
}

func (b *batch) deleteRateLimit(key translate.ServiceKey) {
	if _, ok := b.next.RateLimits[key]; !ok {
		return
	}
	delete(b.rateLimits(), key)
	b.changed = true
}

// rateLimits returns the batch's own RateLimits map, cloning it on first
// use.
func (b *batch) rateLimits() map[translate.ServiceKey]*v1alpha1.RateLimitSpec {
	if !b.ownRateLimits {
		b.next.RateLimits = maps.Clone(b.next.RateLimits)
		if b.next.RateLimits == nil {
			b.next.RateLimits = make(map[translate.ServiceKey]*v1alpha1.RateLimitSpec)
		}
		b.ownRateLimits = true
	}
	return b.next.RateLimits
}
