// Package h1server is a lean HTTP/1.x server for the proxy's listeners.
//
// net/http's server costs, per request, a goroutine that reads ahead in the
// background (to notice a client going away), a context and its cancel, a
// response object with its own header map and buffered writer, and the
// goroutine hand-offs between them; on a proxy pinned to one processor at
// a thousand requests a second those hand-offs become scheduler wake-ups.
// This server reads each request and writes its response on the
// connection's one goroutine, with buffers pooled across connections and a
// response writer reused across a connection's requests.
//
// The trade-off: nothing reads the connection while a handler runs, so a
// client that goes away is noticed only when a write to it (or a read of
// the request body) fails. The connection's context is then cancelled, so
// that the request's upstream exchange ends too; a request waiting for its
// upstream's first byte keeps waiting until that arrives or the route's
// timeout ends it. Pipelined requests are served in turn.
//
// Requests are refused, with a 4xx and the connection closed, where two
// parsers could read them two ways (RFC 9112 §11.2): Content-Length with
// Transfer-Encoding, differing Content-Lengths, Transfer-Encoding other
// than chunked or on HTTP/1.0, obs-fold, invalid bytes in field names or
// values. A head over MaxHeaderBytes is a 431.
//
// What it does not serve goes to Fallback: connections that open with the
// HTTP/2 preface (h2c with prior knowledge). HTTP/2 over TLS never comes
// here: the listener hands it to net/http's server by its ALPN.
package h1server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxHeaderBytes bounds a request line and header when
// Server.MaxHeaderBytes is 0: net/http's bound.
const DefaultMaxHeaderBytes = http.DefaultMaxHeaderBytes

// Server serves HTTP/1.x connections handed to it with ServeConn. Its
// fields are set before the first ServeConn and not changed after.
type Server struct {
	Handler http.Handler
	// BaseContext is the parent of every connection's context; nil is
	// context.Background().
	BaseContext context.Context
	// ConnContext, if set, derives a connection's context from the base
	// one, as http.Server.ConnContext does.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// ConnState, if set, is told a connection's states, as
	// http.Server.ConnState is: New, then Active and Idle in turn, then
	// Closed or Hijacked (also for a connection handed to Fallback).
	// Shutdown returns after the last connection's Closed or Hijacked.
	ConnState func(net.Conn, http.ConnState)
	// ReadHeaderTimeout bounds the wait for a request's head from its
	// first byte (from the connection's start for the first request);
	// IdleTimeout, the wait for the next request. Zero is no bound.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// MaxHeaderBytes bounds a request line and header; 0 is
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Fallback serves the connections that open with the HTTP/2 preface,
	// given with the bytes already read in front; nil closes them.
	Fallback func(net.Conn)
	// Log receives handler panics and misuse; nil discards them.
	Log *slog.Logger

	mu    sync.Mutex
	conns map[*conn]struct{}
	// drained is closed when the server is shutting down and no
	// connection is left.
	drained       chan struct{}
	drainedClosed bool
	inShutdown    atomic.Bool
}

// ServeConn serves c until it closes, fails, is hijacked or handed to
// Fallback; the caller's goroutine is the connection's. A server that is
// shutting down closes c at once.
func (s *Server) ServeConn(rwc net.Conn) {
	if s.shuttingDown() {
		rwc.Close()
		return
	}
	c := newConn(s, rwc)
	if !s.track(c) {
		c.cancel()
		c.releaseBuffers()
		rwc.Close()
		return
	}
	s.setState(rwc, http.StateNew)
	c.serve()
}

// Shutdown stops the server gracefully: idle connections are closed at
// once, those serving a request close once its response is sent (with
// "Connection: close"), and new ones are refused. It returns when none is
// left, or ctx's error when ctx ends first; Close then ends the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.inShutdown.Store(true)
	if s.drained == nil {
		s.drained = make(chan struct{})
		s.closeDrainedLocked()
	}
	for c := range s.conns {
		c.closeIfIdle()
	}
	drained := s.drained
	s.mu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes every connection at once and cancels their contexts: the
// handlers' upstream exchanges end.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inShutdown.Store(true)
	for c := range s.conns {
		// The connection first: a handler woken by its context must
		// find nothing left to write to.
		c.rwc.Close()
		c.cancel()
	}
	return nil
}

func (s *Server) shuttingDown() bool { return s.inShutdown.Load() }

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.closeDrainedLocked()
	s.mu.Unlock()
}

func (s *Server) closeDrainedLocked() {
	if s.drained != nil && !s.drainedClosed && len(s.conns) == 0 {
		s.drainedClosed = true
		close(s.drained)
	}
}

func (s *Server) setState(c net.Conn, st http.ConnState) {
	if s.ConnState != nil {
		s.ConnState(c, st)
	}
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

func (s *Server) logf(msg string, args ...any) {
	if s.Log != nil {
		s.Log.Warn(msg, args...)
	}
}

// Unwrap returns the connection a Fallback was given without the bytes
// replayed in front of it, for hooks (such as http.Server.ConnContext)
// that look at the connection's type; other connections are returned as
// they are.
func Unwrap(c net.Conn) net.Conn {
	if r, ok := c.(*replayConn); ok {
		return r.Conn
	}
	return c
}

// replayConn is a connection handed to Fallback: the bytes the server
// read from it come first.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn is the connection underneath, as tls.Conn names it.
func (c *replayConn) NetConn() net.Conn { return c.Conn }
