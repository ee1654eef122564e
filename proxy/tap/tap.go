// Package tap streams a proxy's live requests to whoever asks its admin
// port (GET /tap). A Hub keeps the subscribers; the request path pays one
// atomic load when nobody taps. Bodies are never captured and credential
// headers are redacted. A subscriber that cannot keep up loses events,
// counted, rather than slowing a request.
package tap

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/api/tapevent"
	"github.com/weftmesh/weft/proxy/observe"
)

// Redacted replaces the value of a credential header.
const Redacted = "<redacted>"

// credentialHeaders are never shown, in requests or responses.
var credentialHeaders = map[string]bool{
	"Authorization":       true,
	"Proxy-Authorization": true,
	"Cookie":              true,
	"Set-Cookie":          true,
	"X-Api-Key":           true,
}

// DefaultBuffer is how many events a subscriber may fall behind by before
// it loses some.
const DefaultBuffer = 256

// Filter selects the requests a subscriber sees; empty fields match all.
type Filter struct {
	// Direction is "inbound" or "outbound".
	Direction string
	// PathPrefix matches the start of the request path.
	PathPrefix string
	// Method matches exactly, ignoring case.
	Method string
	// Authority matches the Host exactly, ignoring case.
	Authority string
}

func (f Filter) match(dir observe.Direction, r *http.Request) bool {
	return (f.Direction == "" || f.Direction == string(dir)) &&
		(f.PathPrefix == "" || strings.HasPrefix(r.URL.Path, f.PathPrefix)) &&
		(f.Method == "" || strings.EqualFold(f.Method, r.Method)) &&
		(f.Authority == "" || strings.EqualFold(f.Authority, r.Host))
}

// Hub fans a proxy's requests out to its current subscribers.
type Hub struct {
	// subs is the current subscriber list, replaced whole on change so
	// that Publish reads it without a lock; nil when nobody taps.
	subs    atomic.Pointer[[]*Subscription]
	mu      sync.Mutex
	closed  bool
	dropped prometheus.Counter
	// Workload names this proxy in the events it publishes.
	workload string
}

// NewHub returns a Hub whose drop counter (weft_tap_dropped_events_total)
// is registered with reg; reg may be nil. workload names the proxy in
// events ("" to leave it to the reader).
func NewHub(reg prometheus.Registerer, workload string) *Hub {
	h := &Hub{
		workload: workload,
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_tap_dropped_events_total",
			Help: "Tap events dropped because a subscriber fell behind.",
		}),
	}
	if reg != nil {
		if err := reg.Register(h.dropped); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				h.dropped = are.ExistingCollector.(prometheus.Counter)
			}
		}
	}
	return h
}

// Active reports whether anyone taps: the only cost when nobody does.
func (h *Hub) Active() bool { return h.subs.Load() != nil }

// Subscription is one tapper's stream of events.
type Subscription struct {
	hub    *Hub
	filter Filter
	ch     chan tapevent.Event
	// done is closed when the subscription ends (Close or the Hub's Close).
	done    chan struct{}
	once    sync.Once
	dropped atomic.Int64
}

// Events are the matching requests, in the order they ended.
func (s *Subscription) Events() <-chan tapevent.Event { return s.ch }

// Done is closed when the subscription has ended.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Dropped is how many events this subscriber lost.
func (s *Subscription) Dropped() int64 { return s.dropped.Load() }

// Close ends the subscription; it is safe to call more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.hub.remove(s)
		close(s.done)
	})
}

// Subscribe starts a subscription holding up to buffer events (DefaultBuffer
// when buffer ≤ 0). After the Hub is closed it returns an ended one.
func (h *Hub) Subscribe(f Filter, buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	s := &Subscription{hub: h, filter: f, ch: make(chan tapevent.Event, buffer), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.once.Do(func() { close(s.done) })
		return s
	}
	cur := h.subs.Load()
	var next []*Subscription
	if cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, s)
	h.subs.Store(&next)
	return s
}

func (h *Hub) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.subs.Load()
	if cur == nil {
		return
	}
	var next []*Subscription
	for _, o := range *cur {
		if o != s {
			next = append(next, o)
		}
	}
	if len(next) == 0 {
		h.subs.Store(nil)
		return
	}
	h.subs.Store(&next)
}

// Close ends every subscription and refuses new ones: streams being served
// return, so that the admin server can shut down.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	cur := h.subs.Load()
	h.mu.Unlock()
	if cur == nil {
		return
	}
	for _, s := range *cur {
		s.Close()
	}
}

// Publish offers a finished request to the subscribers whose filter it
// matches. It never blocks.
func (h *Hub) Publish(r *observe.Request) {
	subs := h.subs.Load()
	if subs == nil || r.Request == nil {
		return
	}
	var ev *tapevent.Event
	for _, s := range *subs {
		if !s.filter.match(r.Direction, r.Request) {
			continue
		}
		if ev == nil {
			e := Event(r, h.workload)
			ev = &e
		}
		select {
		case s.ch <- *ev:
		default:
			s.dropped.Add(1)
			h.dropped.Inc()
		}
	}
}

// Event describes a finished request, without bodies and with credential
// headers redacted.
func Event(r *observe.Request, workload string) tapevent.Event {
	req := r.Request
	ev := tapevent.Event{
		Time:        r.Start.UTC(),
		Workload:    workload,
		Direction:   string(r.Direction),
		Source:      peerName(r.Source),
		SourceID:    r.Source.ID,
		Destination: peerName(r.Destination),
		Method:      req.Method,
		Authority:   req.Host,
		Path:        req.URL.RequestURI(),
		Status:      r.Status,
		GRPCStatus:  r.GRPCStatus,
		DurationMs:  float64(r.Duration) / float64(time.Millisecond),
		Route:       r.Route,
		Upstream:    r.Upstream,
		MTLS:        r.MTLS,
		Flags:       r.Flags.Names(),
		RequestHdr:  Redact(req.Header),
		ResponseHdr: Redact(r.ResponseHeader),
		ReqBytes:    r.RequestBytes,
		RespBytes:   r.ResponseBytes,
	}
	return ev
}

func peerName(p observe.Peer) string {
	if p.Service == "" {
		return ""
	}
	return p.Service + "." + p.Namespace
}

// Redact copies a header with credential values replaced; nil for none.
func Redact(h http.Header) map[string][]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		if credentialHeaders[http.CanonicalHeaderKey(k)] {
			red := make([]string, len(vs))
			for i := range red {
				red[i] = Redacted
			}
			out[k] = red
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}
