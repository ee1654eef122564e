package xds

import (
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// typeSets shares between proxies the cache.Resources of one type whose
// items are the same messages. go-control-plane indexes every snapshot's
// resources by name, a map per type and proxy; with thousands of proxies
// most of those maps are equal: every proxy's ROOTCA secret, the clusters
// and endpoints of the replicas of a service. translate.Cache hands
// identical resources out as one message, so equal sets are recognised by
// their version and the identity of their items, never by a hash alone.
//
// A set lives while a snapshot holds it: nodes acquire the set of each type
// they push and release it when they push another or close.
type typeSets struct {
	mu   sync.Mutex
	sets map[typeSetKey]*typeSet
}

type typeSetKey struct{ typeURL, version string }

// typeSet is one shared set and the number of snapshots holding it.
type typeSet struct {
	key   typeSetKey
	items []types.Resource
	res   cache.Resources
	refs  int
}

func newTypeSets() *typeSets {
	return &typeSets{sets: map[typeSetKey]*typeSet{}}
}

// acquire returns the set of typeURL at version holding items, shared with
// the other snapshots that hold the same items, and counts the caller as
// one of its holders until it calls release.
func (t *typeSets) acquire(typeURL, version string, items []types.Resource) *typeSet {
	key := typeSetKey{typeURL, version}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.sets[key]; s != nil && sameItems(s.items, items) {
		s.refs++
		return s
	}
	s := &typeSet{key: key, items: items, res: cache.NewResources(version, items), refs: 1}
	if t.sets[key] == nil {
		// Equal versions with other items (a proxyless node's subset, a
		// hash collision) get a set of their own, unshared.
		t.sets[key] = s
	}
	return s
}

// release drops one holder of s, and s with its last.
func (t *typeSets) release(s *typeSet) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.refs--; s.refs == 0 && t.sets[s.key] == s {
		delete(t.sets, s.key)
	}
}

// sameItems reports whether a and b hold the same messages in the same order.
func sameItems(a, b []types.Resource) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
