package tcp

import (
	"context"
	"net"
	"sync"
)

// Sessions tracks the long-lived connections of one listener that no HTTP
// server owns: opaque TCP sessions and upgraded (WebSocket) connections. A
// drain waits for them to end and closes them at its deadline.
type Sessions struct {
	mu      sync.Mutex
	open    map[*session]struct{}
	closed  bool
	waiters []chan struct{}
}

type session struct{ conns []net.Conn }

// NewSessions returns an empty tracker.
func NewSessions() *Sessions { return &Sessions{open: map[*session]struct{}{}} }

// Add tracks conns as one session until done is called. ok is false, and
// nothing tracked, when the tracker was closed: the caller must then close
// conns itself.
func (s *Sessions) Add(conns ...net.Conn) (done func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return func() {}, false
	}
	sess := &session{conns: conns}
	s.open[sess] = struct{}{}
	var once sync.Once
	return func() { once.Do(func() { s.remove(sess) }) }, true
}

func (s *Sessions) remove(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, sess)
	if len(s.open) == 0 {
		for _, w := range s.waiters {
			close(w)
		}
		s.waiters = nil
	}
}

// Len returns the number of open sessions.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// Wait returns when no session is open, or with ctx's error when ctx ends first.
func (s *Sessions) Wait(ctx context.Context) error {
	s.mu.Lock()
	if len(s.open) == 0 {
		s.mu.Unlock()
		return nil
	}
	w := make(chan struct{})
	s.waiters = append(s.waiters, w)
	s.mu.Unlock()
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CloseAll closes every open session's connections and refuses new ones.
func (s *Sessions) CloseAll() {
	s.mu.Lock()
	s.closed = true
	var conns []net.Conn
	for sess := range s.open {
		conns = append(conns, sess.conns...)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

type sessionsKey struct{}

// WithSessions returns a context carrying s, for code that takes a
// connection over from an HTTP server.
func WithSessions(ctx context.Context, s *Sessions) context.Context {
	return context.WithValue(ctx, sessionsKey{}, s)
}

// SessionsFrom returns the tracker WithSessions stored, or nil.
func SessionsFrom(ctx context.Context) *Sessions {
	s, _ := ctx.Value(sessionsKey{}).(*Sessions)
	return s
}
