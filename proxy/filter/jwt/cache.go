package jwt

import (
	"sync"
	"time"
)

// Verified tokens are cached briefly, so that a client sending the same
// token on every request costs one signature check per maxCacheAge rather
// than one per request. An entry never outlives its token's exp, and is
// keyed by the whole raw token and the provider that verified it.
const (
	tokenCacheSize = 1024
	maxCacheAge    = time.Minute
)

// verified is what a successful check of a token leaves: its claims, and
// until when they may be used without checking again (its exp, with skew,
// or maxCacheAge from the check, whichever is first).
type verified struct {
	claims map[string]any
	until  time.Time
}

type cacheKey struct {
	provider *provider
	raw      string
}

// tokenCache is a bounded LRU of verified tokens.
type tokenCache struct {
	mu      sync.Mutex
	entries map[cacheKey]*cacheEntry
	// head is the most recently used entry, head.prev the least.
	head *cacheEntry
}

type cacheEntry struct {
	key        cacheKey
	v          verified
	prev, next *cacheEntry
}

func newTokenCache() *tokenCache {
	return &tokenCache{entries: make(map[cacheKey]*cacheEntry, tokenCacheSize)}
}

// get returns the verified token for k if it is still good at now.
func (c *tokenCache) get(k cacheKey, now time.Time) (verified, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		return verified{}, false
	}
	if !now.Before(e.v.until) {
		c.unlinkLocked(e)
		delete(c.entries, k)
		return verified{}, false
	}
	c.unlinkLocked(e)
	c.pushLocked(e)
	return e.v, true
}

// put records a verified token, evicting the least recently used one when
// the cache is full.
func (c *tokenCache) put(k cacheKey, v verified) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[k]; e != nil {
		e.v = v
		c.unlinkLocked(e)
		c.pushLocked(e)
		return
	}
	if len(c.entries) >= tokenCacheSize {
		old := c.head.prev
		c.unlinkLocked(old)
		delete(c.entries, old.key)
	}
	e := &cacheEntry{key: k, v: v}
	c.entries[k] = e
	c.pushLocked(e)
}

func (c *tokenCache) pushLocked(e *cacheEntry) {
	if c.head == nil {
		e.prev, e.next = e, e
	} else {
		e.next, e.prev = c.head, c.head.prev
		c.head.prev.next = e
		c.head.prev = e
	}
	c.head = e
}

func (c *tokenCache) unlinkLocked(e *cacheEntry) {
	if e.next == e {
		c.head = nil
	} else {
		e.prev.next = e.next
		e.next.prev = e.prev
		if c.head == e {
			c.head = e.next
		}
	}
	e.prev, e.next = nil, nil
}
