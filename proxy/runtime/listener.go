package runtime

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/ratelog"
	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/h1server"
	"github.com/weftmesh/weft/proxy/sockio"
	"github.com/weftmesh/weft/proxy/tcp"
)

// Server limits of every listener's HTTP servers.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 5 * time.Minute
	// maxConcurrentStreams lets one pooled connection from a peer proxy
	// carry many requests before the peer opens another.
	maxConcurrentStreams = 1024
)

// socket is a bound listening socket. It outlives configurations: each
// accepted connection is handled by the listener configuration current at
// accept time, and each HTTP request by the one current at its arrival.
type socket struct {
	rt      *Runtime
	key     string
	addr    string // the bound address
	ln      net.Listener
	current atomic.Pointer[listenerConfig]
	active  prometheus.Gauge

	// HTTP/1.x connections are served by h1 (proxy/h1server), HTTP/2 ones
	// (ALPN h2, or h2c with prior knowledge) by net/http's server; httpConn
	// tells them apart.
	http     *http.Server
	h1       *h1server.Server
	httpConn *httpConns
	sessions *tcp.Sessions
	// plain tracks, besides sessions, the plaintext TCP sessions of a
	// PERMISSIVE listener, closed when it becomes STRICT (see use).
	plain atomic.Pointer[tcp.Sessions]
	// ctx ends the dials of TCP sessions when the socket is force-closed.
	ctx    context.Context
	cancel context.CancelFunc

	stopOnce  sync.Once
	accepting chan struct{} // closed when the accept loop returns
	// refusals logs refused handshakes, thinned.
	refusals *ratelog.Limiter
}

// bind opens the sockets the new configuration needs and does not have.
// On failure it closes what it opened.
func (r *Runtime) bind(next *snapshot) ([]*socket, error) {
	var bound []*socket
	for _, name := range sortedKeys(next.listeners) {
		lc := next.listeners[name]
		if _, ok := r.sockets[lc.bindKey()]; ok {
			continue
		}
		ln, err := net.Listen("tcp", lc.address)
		if err != nil {
			for _, s := range bound {
				s.ln.Close()
			}
			return nil, fmt.Errorf("listener %q: bind %s: %w", name, lc.address, err)
		}
		bound = append(bound, r.newSocket(lc, ln))
	}
	return bound, nil
}

func (r *Runtime) newSocket(lc *listenerConfig, ln net.Listener) *socket {
	s := &socket{
		rt: r, key: lc.bindKey(), addr: ln.Addr().String(), ln: ln,
		active:    r.metrics.Active(lc.direction),
		sessions:  tcp.NewSessions(),
		accepting: make(chan struct{}),
		refusals:  newRefusalLog(r.log),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.plain.Store(tcp.NewSessions())
	h2 := newConnQueue(ln.Addr())
	base := tcp.WithSessions(s.ctx, s.sessions)
	s.h1 = &h1server.Server{
		Handler:           s,
		BaseContext:       base,
		ConnContext:       httpConnContext,
		ConnState:         s.connState,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		// h2c with prior knowledge.
		Fallback: func(c net.Conn) {
			if !h2.deliver(c) {
				c.Close()
			}
		},
		// Handler panics other than http.ErrAbortHandler.
		Log: r.log.With("address", s.addr),
	}
	s.httpConn = &httpConns{h1: s.h1, h2: h2}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	s.http = &http.Server{
		Handler:           s,
		Protocols:         protocols,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: maxConcurrentStreams},
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return base },
		ConnState:         s.connState,
		ConnContext:       httpConnContext,
		// Handshake failures of refused peers are expected: keep them at debug.
		ErrorLog: slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
	}
	return s
}

// start runs the socket's accept loop and HTTP server.
func (s *socket) start() {
	s.rt.bg.Add(2)
	go func() {
		defer s.rt.bg.Done()
		_ = s.http.Serve(s.httpConn.h2)
	}()
	go func() {
		defer s.rt.bg.Done()
		defer close(s.accepting)
		s.accept()
	}()
}

func (s *socket) accept() {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.rt.log.Warn("accept failed", "address", s.addr, "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		delay = 0
		c = sockio.Wrap(c)
		lc := s.current.Load()
		if lc.detect != nil {
			s.detect(lc.detect, c)
			continue
		}
		if lc.plaintext != nil {
			// Two chains: which one depends on the first byte.
			s.inspect(lc, c)
			continue
		}
		s.serve(&lc.filterChain, c)
	}
}

// serve hands a connection to a filter chain.
func (s *socket) serve(fc *filterChain, c net.Conn) {
	switch {
	case fc.http != nil && fc.tls != nil:
		// HTTP/2 between proxies: a response's HEADERS and DATA
		// frames leave in one write (HTTP/1.1 is switched to direct
		// writes after the handshake).
		s.handshakeHTTP(fc, tls.Server(cluster.Coalesce(c), fc.tls))
	case fc.http != nil:
		if len(fc.rbac) > 0 {
			s.authorizeHTTP(fc, c)
			return
		}
		s.rt.bg.Add(1)
		go func() {
			defer s.rt.bg.Done()
			if !s.httpConn.deliver(c) {
				c.Close()
			}
		}()
	case fc.tls != nil:
		s.serveTCP(fc, tls.Server(c, fc.tls))
	default:
		s.serveTCP(fc, c)
	}
}

// handshakeHTTP completes a TLS handshake before the HTTP servers see the
// connection: a failed handshake then just closes it (net/http would answer
// a plaintext request with a plaintext 400).
func (s *socket) handshakeHTTP(fc *filterChain, c *tls.Conn) {
	s.rt.bg.Add(1)
	go func() {
		defer s.rt.bg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, tcp.HandshakeTimeout)
		err := c.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.handshakeFailed(c, err)
			c.Close()
			return
		}
		if !s.allowConn(fc, c) {
			c.Close()
			return
		}
		if c.ConnectionState().NegotiatedProtocol != "h2" {
			// HTTP/1.1 responses leave in one write each: nothing to batch.
			if cc, ok := c.NetConn().(*cluster.CoalescingConn); ok {
				cc.Direct()
			}
		}
		if !s.httpConn.deliver(c) {
			c.Close()
		}
	}()
}

func (s *socket) serveTCP(fc *filterChain, c net.Conn) {
	done, ok := s.sessions.Add(c)
	if !ok {
		c.Close()
		return
	}
	s.active.Inc()
	s.rt.bg.Add(1)
	go func() {
		defer s.rt.bg.Done()
		defer done()
		defer s.active.Dec()
		if len(fc.rbac) > 0 {
			if ok, denied := s.handshakeAndAllow(fc, c); !ok {
				if denied != "" {
					fc.tcp.Refused(c, denied)
				}
				c.Close()
				return
			}
		}
		if fc.permissive {
			plainDone, ok := s.plain.Load().Add(c)
			if !ok {
				// The listener became STRICT since the connection came.
				c.Close()
				return
			}
			defer plainDone()
		}
		fc.tcp.Serve(s.ctx, c)
	}()
}

// ServeHTTP hands a request to the connection manager of the listener
// configuration in service.
func (s *socket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fc := s.requestChain(r)
	if fc == nil || fc.http == nil {
		// The listener became a TCP proxy under this connection, or no
		// longer accepts its transport (PERMISSIVE became STRICT).
		w.Header().Set("Connection", "close")
		w.Header().Set("X-Weft-Error", "listener_changed")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	fc.http.ServeHTTP(w, r)
}

func (s *socket) connState(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		s.active.Inc()
	case http.StateClosed, http.StateHijacked:
		// Hijacked connections are upgrades; they count again as sessions
		// of the hcm's splice, which does not report to this gauge.
		s.active.Dec()
	}
}

// stopAccepting closes the listening socket: new connections are refused.
func (s *socket) stopAccepting() {
	s.stopOnce.Do(func() { s.ln.Close() })
}

// drain waits for the socket's connections to finish, until ctx ends; then
// it closes what is left.
func (s *socket) drain(ctx context.Context) error {
	s.stopAccepting()
	select {
	case <-s.accepting:
	case <-ctx.Done():
	}
	// Shutdown closes idle connections, sends HTTP/2 GOAWAY, and waits for
	// requests in flight; both servers at once.
	h1Done := make(chan error, 1)
	go func() { h1Done <- s.h1.Shutdown(ctx) }()
	err := s.http.Shutdown(ctx)
	if e := <-h1Done; err == nil {
		err = e
	}
	if e := s.sessions.Wait(ctx); err == nil {
		err = e
	}
	if err != nil {
		s.forceClose()
	}
	return err
}

// forceClose closes every connection of the socket at once.
func (s *socket) forceClose() {
	s.stopAccepting()
	s.cancel()
	s.http.Close()
	s.h1.Close()
	s.sessions.CloseAll()
}

// httpConnContext is connContext for the HTTP servers' connections: one
// that h1server handed over (h2c) carries the bytes it read in front.
func httpConnContext(ctx context.Context, c net.Conn) context.Context {
	return connContext(ctx, h1server.Unwrap(c))
}

// httpConns hands a socket's HTTP connections to its servers.
type httpConns struct {
	h1 *h1server.Server
	h2 *connQueue
}

// deliver serves c: a TLS connection that negotiated h2 goes to net/http's
// server (and deliver returns at once), any other to the HTTP/1.x server
// on the caller's goroutine, until the connection ends. It returns false
// when the socket no longer serves (c is the caller's to close).
func (q *httpConns) deliver(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		return q.h2.deliver(c)
	}
	q.h1.ServeConn(c)
	return true
}

// connQueue is the net.Listener of a socket's net/http server: the
// connections it serves (HTTP/2) are handed to it.
type connQueue struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) deliver(c net.Conn) bool {
	select {
	case q.conns <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

var (
	_ net.Listener = (*connQueue)(nil)
	_ http.Handler = (*socket)(nil)
)
