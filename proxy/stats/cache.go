package stats

import (
	"maps"
	"sync"
	"sync/atomic"
)

// seriesCache holds the metric handles of each label set, so that recording
// takes no lock and allocates nothing once a label set has been seen: reads
// load an immutable map, and the rare miss copies it under a lock.
type seriesCache[K comparable, V any] struct {
	all atomic.Pointer[map[K]V] // copied on write
	mu  sync.Mutex
}

// get returns the handles of k, made by newV on its first use.
func (c *seriesCache[K, V]) get(k K, newV func(K) V) V {
	if all := c.all.Load(); all != nil {
		if v, ok := (*all)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next := map[K]V{}
	if old := c.all.Load(); old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
		next = maps.Clone(*old)
	}
	v := newV(k)
	next[k] = v
	c.all.Store(&next)
	return v
}
