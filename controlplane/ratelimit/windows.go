package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"
)

// windows counts hits per key in fixed windows aligned to the clock (a
// per-minute window starts on the minute), as Envoy's reference rate limit
// service does. Keys are spread over shards, each with its own lock, and
// each shard drops its expired windows as it goes.
type windows struct {
	seed   maphash.Seed
	once   sync.Once
	shards [64]shard
}

type shard struct {
	mu    sync.Mutex
	m     map[string]*window
	swept time.Time
}

type window struct {
	start, end time.Time
	count      uint64
}

// sweepEvery is how often a shard looks for windows that have ended.
const sweepEvery = time.Minute

// maxWindowsPerShard bounds the memory the counts take (64 shards of 4096
// windows) whatever keys the callers send.
const maxWindowsPerShard = 4096

// add counts hits for key in the window of length size that holds now, and
// returns the window's count so far and the time until it ends. ok is
// false, and nothing is counted, when key is new and its shard is full of
// windows that have not ended.
func (w *windows) add(key string, now time.Time, size time.Duration, hits uint64) (count uint64, reset time.Duration, ok bool) {
	w.once.Do(func() { w.seed = maphash.MakeSeed() })
	sh := &w.shards[maphash.String(w.seed, key)%uint64(len(w.shards))]
	start := now.Truncate(size)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		sh.m = map[string]*window{}
	}
	win := sh.m[key]
	if now.Sub(sh.swept) > sweepEvery || (win == nil && len(sh.m) >= maxWindowsPerShard) {
		sh.sweep(now)
	}
	if win == nil && len(sh.m) >= maxWindowsPerShard {
		return 0, 0, false
	}
	if win == nil || !win.start.Equal(start) || win.end.Sub(win.start) != size {
		win = &window{start: start, end: start.Add(size)}
		sh.m[key] = win
	}
	win.count += hits
	return win.count, win.end.Sub(now), true
}

// sweep drops the windows that have ended.
func (sh *shard) sweep(now time.Time) {
	for k, win := range sh.m {
		if !win.end.After(now) {
			delete(sh.m, k)
		}
	}
	sh.swept = now
}

// len is the number of windows held, for tests.
func (w *windows) len() int {
	n := 0
	for i := range w.shards {
		sh := &w.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
