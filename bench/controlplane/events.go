package main

import (
	"math"
	"slices"
	"sync"
	"time"
)

// event is one change whose arrival is timed at every proxy that should
// see it: from start to the ACK, by each of those proxies, of the first
// response that carries the change.
type event struct {
	kind   string
	detail string // what changed, for the log of changes that did not arrive

	mu       sync.Mutex
	start    time.Time
	expected int         // proxies watched
	already  int         // proxies that held the change before it was made (not timed)
	gone     int         // proxies that left before the change reached them (not timed)
	acks     []time.Time // arrival at each proxy, in the order they came
	pending  int
	done     chan struct{}
	closed   bool
	finished time.Time
}

type watch struct {
	ev *event
	ok func(*adsClient) bool
}

func newEvent(kind string) *event {
	return &event{kind: kind, done: make(chan struct{})}
}

// watchProxy makes ev wait for ok at proxy a.
func (ev *event) watchProxy(a *adsClient, ok func(*adsClient) bool) {
	ev.mu.Lock()
	ev.expected++
	ev.pending++
	ev.mu.Unlock()
	if !a.addWatch(ev, ok) {
		ev.mu.Lock()
		ev.already++
		ev.mu.Unlock()
		ev.settle(false)
	}
}

// arm sets the start time and closes done at once when nothing is pending.
func (ev *event) arm(start time.Time) {
	ev.mu.Lock()
	ev.start = start
	ev.mu.Unlock()
	ev.settle(false)
}

func (ev *event) arrive(at time.Time) {
	ev.mu.Lock()
	ev.acks = append(ev.acks, at)
	ev.mu.Unlock()
	ev.settle(true)
}

// leftEarly is called when a watched proxy leaves before the change reached it.
func (ev *event) leftEarly() {
	ev.mu.Lock()
	ev.gone++
	ev.mu.Unlock()
	ev.settle(true)
}

// settle counts one watch down (when dec) and closes done once nothing is
// pending and the event has a start.
func (ev *event) settle(dec bool) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if dec {
		ev.pending--
	}
	if ev.pending == 0 && !ev.start.IsZero() && !ev.closed {
		ev.closed = true
		ev.finished = time.Now()
		close(ev.done)
	}
}

// wait waits up to d for every watched proxy; it reports whether all came.
func (ev *event) wait(d time.Duration) bool {
	select {
	case <-ev.done:
		return true
	case <-time.After(d):
		return false
	}
}

// result is what an event measured, read after it is done or timed out.
type result struct {
	kind     string
	detail   string
	expected int
	timed    int           // proxies whose ACK was timed
	missing  int           // proxies that never ACKed the change in time
	all      time.Duration // start to the last proxy's ACK (when none is missing)
	each     []time.Duration
	already  int
	gone     int
}

func (ev *event) result() result {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	r := result{kind: ev.kind, detail: ev.detail, expected: ev.expected, already: ev.already, gone: ev.gone, missing: ev.pending}
	for _, at := range ev.acks {
		d := at.Sub(ev.start)
		r.each = append(r.each, d)
		r.all = max(r.all, d)
	}
	r.timed = len(r.each)
	return r
}

// dist is a distribution of durations.
type dist struct {
	n              int
	p50, p99, maxd time.Duration
}

func distOf(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return dist{n: len(s), p50: quantile(s, 0.50), p99: quantile(s, 0.99), maxd: s[len(s)-1]}
}

// quantile of sorted s, nearest rank.
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// summary aggregates the results of events of one kind.
type summary struct {
	kind     string
	events   int
	complete int // events every watched proxy ACKed
	proxies  int // proxy ACKs timed
	missing  int
	already  int
	gone     int
	fanout   float64 // mean proxies watched per event
	allDist  dist    // per event: start to the last ACK, complete events only
	eachDist dist    // per proxy ACK
}

func summarize(kind string, rs []result) summary {
	s := summary{kind: kind, events: len(rs)}
	var all, each []time.Duration
	expected := 0
	for _, r := range rs {
		expected += r.expected
		s.proxies += r.timed
		s.missing += r.missing
		s.already += r.already
		s.gone += r.gone
		each = append(each, r.each...)
		if r.missing == 0 {
			s.complete++
			if r.timed > 0 {
				all = append(all, r.all)
			}
		}
	}
	if len(rs) > 0 {
		s.fanout = float64(expected) / float64(len(rs))
	}
	s.allDist = distOf(all)
	s.eachDist = distOf(each)
	return s
}
