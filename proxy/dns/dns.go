// Package dns is the sidecar's DNS proxy: it answers A (and, empty, AAAA)
// queries for mesh service names with the service's virtual IP from the
// live xDS configuration, A and AAAA queries for the exact hosts of
// ExternalServices with static endpoints with those endpoints' addresses,
// and forwards every other query, untouched and uncached, to the pod's own
// resolvers over the transport it came on.
package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/weftmesh/weft/internal/ascii"
	"github.com/weftmesh/weft/internal/ratelog"
)

// Defaults.
const (
	// DefaultAddr is where the proxy listens in transparent mode; the
	// capture rules redirect the pod's port 53 here.
	DefaultAddr = "127.0.0.1:15053"
	// DefaultTimeout bounds one attempt at one upstream resolver.
	DefaultTimeout = 2 * time.Second
	// TTL of a mesh answer: short, as VIPs may move (Istio uses 30 s).
	meshTTL = 30
	// maxUDPQueries bounds the UDP queries in flight; beyond it a query is
	// dropped and the client retries, as with any busy resolver.
	maxUDPQueries = 256
	// tcpIdle closes a client TCP connection that sends no query.
	tcpIdle = 10 * time.Second
	// maxMsg is the largest DNS message (a TCP length prefix's limit).
	maxMsg = 65535
)

// Table resolves a mesh service to its virtual IP. It is read on every
// query, so the answer follows the live configuration.
type Table interface {
	VIP(service, namespace string) (netip.Addr, bool)
}

// TableFunc adapts a function to Table.
type TableFunc func(service, namespace string) (netip.Addr, bool)

// VIP calls f.
func (f TableFunc) VIP(service, namespace string) (netip.Addr, bool) { return f(service, namespace) }

// HostTable resolves an ExternalService host to its static endpoint
// addresses. It is read on every query that is no mesh name.
type HostTable interface {
	// HostAddrs returns the addresses of name (lowercase, without the
	// root dot), or none when the name is not an ExternalService host the
	// proxy answers.
	HostAddrs(name string) []netip.Addr
}

// HostTableFunc adapts a function to HostTable.
type HostTableFunc func(name string) []netip.Addr

// HostAddrs calls f.
func (f HostTableFunc) HostAddrs(name string) []netip.Addr { return f(name) }

// Options configure a Server.
type Options struct {
	// Addr is the UDP and TCP address to listen on (DefaultAddr).
	Addr string
	// Upstreams are the resolvers (ip:port) other names go to, tried in
	// order. None of them may be Addr itself. With none, mesh names still
	// resolve and every other query fails (SERVFAIL).
	Upstreams []string
	// Namespace is the workload's namespace: bare names resolve in it.
	Namespace string
	// Domain is the mesh DNS domain (DefaultDomain).
	Domain string
	// Table maps services to VIPs.
	Table Table
	// Hosts, if set, maps ExternalService hosts to their addresses;
	// without it those names are forwarded like any other.
	Hosts HostTable
	// Timeout bounds one attempt at one upstream (DefaultTimeout).
	Timeout time.Duration
	// Metrics, when set, receives weft_dns_queries_total.
	Metrics prometheus.Registerer
	Log     *slog.Logger
}

func (o *Options) defaults() {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Validate names every problem with the options; it also refuses an
// upstream that is the proxy's own address, which would loop.
func (o *Options) Validate() error {
	var errs []error
	if o.Table == nil {
		errs = append(errs, errors.New("dns: a service table is required"))
	}
	self, err := netip.ParseAddrPort(o.Addr)
	if err != nil {
		errs = append(errs, fmt.Errorf("dns: --dns %q: want ip:port: %w", o.Addr, err))
	}
	for _, u := range o.Upstreams {
		ap, err := netip.ParseAddrPort(u)
		if err != nil {
			errs = append(errs, fmt.Errorf("dns: upstream %q: want ip:port: %w", u, err))
			continue
		}
		if self.IsValid() && loops(self, ap) {
			errs = append(errs, fmt.Errorf("dns: upstream %s is this proxy's own DNS address %s: queries would loop", u, o.Addr))
		}
	}
	return errors.Join(errs...)
}

// loops tells whether sending to up reaches the listener at self.
func loops(self, up netip.AddrPort) bool {
	if self.Port() != up.Port() {
		return false
	}
	a, b := self.Addr().Unmap(), up.Addr().Unmap()
	return a == b || a.IsUnspecified() && (b.IsLoopback() || b.IsUnspecified())
}

// Server is a running DNS proxy.
type Server struct {
	opts    Options
	udp     net.PacketConn
	tcp     net.Listener
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	slots   chan struct{}
	metrics *metrics
	errs    *ratelog.Limiter

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Listen opens the UDP and TCP sockets; Serve answers on them.
func Listen(o Options) (*Server, error) {
	o.defaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	pc, ln, err := listenBoth(o.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts: o, udp: pc, tcp: ln,
		slots:   make(chan struct{}, maxUDPQueries),
		metrics: newMetrics(o.Metrics),
		errs:    ratelog.New(o.Log, slog.LevelWarn, 5, 10*time.Second),
		conns:   map[net.Conn]struct{}{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if len(o.Upstreams) == 0 {
		o.Log.Warn("dns: no upstream resolver (none in resolv.conf and no --dns-upstream): only mesh names will resolve", "address", s.Addr())
	}
	return s, nil
}

// listenBoth opens UDP and TCP sockets on one address. Port 0 picks a UDP
// port and TCP takes the same one; when another process holds that TCP
// port, another pair is tried.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	const attempts = 5
	anyPort := strings.HasSuffix(addr, ":0")
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listen udp %s: %w", addr, err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if !anyPort || i == attempts-1 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("dns: listen tcp %s: %w", addr, err)
		}
	}
}

// Addr is the address the server answers on (UDP and TCP).
func (s *Server) Addr() string { return s.udp.LocalAddr().String() }

// Serve answers queries until Close; it returns once every goroutine it
// started has ended.
func (s *Server) Serve() {
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.serveUDP() }()
	go func() { defer s.wg.Done(); s.serveTCP() }()
	s.wg.Wait()
}

// Close stops the server: sockets close and queries in flight end.
func (s *Server) Close() error {
	s.cancel()
	err := errors.Join(s.udp.Close(), s.tcp.Close())
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	return err
}

func (s *Server) serveUDP() {
	buf := make([]byte, maxMsg)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.metrics.failed.Inc()
			s.errs.Log("dns: too many queries in flight: dropped one", "from", from.String())
			continue
		}
		q := append([]byte(nil), buf[:n]...)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			if resp := s.handle(q, false); resp != nil {
				_, _ = s.udp.WriteTo(resp, from)
			}
		}()
	}
}

func (s *Server) serveTCP() {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serveConn(c)
		}()
	}
}

// serveConn answers length-prefixed queries on one TCP connection, one at
// a time, until the client closes it or stays idle.
func (s *Server) serveConn(c net.Conn) {
	for {
		_ = c.SetReadDeadline(time.Now().Add(tcpIdle))
		q, err := readTCPMsg(c)
		if err != nil {
			return
		}
		resp := s.handle(q, true)
		if resp == nil {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(s.opts.Timeout))
		if err := writeTCPMsg(c, resp); err != nil {
			return
		}
	}
}

// handle answers one query: locally for a mesh name, else through an
// upstream. It returns nil when the query is not worth an answer (not
// even a header to echo).
func (s *Server) handle(q []byte, overTCP bool) []byte {
	resp, local, err := answerLocal(q, s.opts.Namespace, s.opts.Domain, s.opts.Table, s.opts.Hosts)
	switch {
	case err != nil:
		s.metrics.failed.Inc()
		return resp // FORMERR when the header could be read, else nil
	case local:
		s.metrics.local.Inc()
		return resp
	}
	ctx, cancel := context.WithTimeout(s.ctx, time.Duration(len(s.opts.Upstreams))*s.opts.Timeout)
	defer cancel()
	out, err := s.forward(ctx, q, overTCP)
	if err != nil {
		s.metrics.failed.Inc()
		s.errs.Log("dns: no upstream resolver answered", "err", err)
		return failure(q, dnsmessage.RCodeServerFailure)
	}
	s.metrics.forwarded.Inc()
	return out
}

// forward sends q to each upstream in turn until one answers, over the
// client's transport: a truncated UDP answer goes back as it is, so the
// client retries over TCP, as it would without the proxy.
func (s *Server) forward(ctx context.Context, q []byte, overTCP bool) ([]byte, error) {
	if len(s.opts.Upstreams) == 0 {
		return nil, errors.New("no upstream resolver is configured")
	}
	var errs []error
	for _, up := range s.opts.Upstreams {
		actx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		resp, err := exchange(actx, up, q, overTCP)
		cancel()
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// exchange sends one query to one upstream and returns its answer, after
// checking that it answers this query (ID and question).
func exchange(ctx context.Context, upstream string, q []byte, overTCP bool) ([]byte, error) {
	network := "udp"
	if overTCP {
		network = "tcp"
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream %s/%s: %w", upstream, network, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if overTCP {
		if err := writeTCPMsg(c, q); err != nil {
			return nil, fmt.Errorf("upstream %s/tcp: %w", upstream, err)
		}
		resp, err := readTCPMsg(c)
		if err != nil {
			return nil, fmt.Errorf("upstream %s/tcp: %w", upstream, err)
		}
		if !answers(q, resp) {
			return nil, fmt.Errorf("upstream %s/tcp: the answer does not match the query", upstream)
		}
		return resp, nil
	}
	if _, err := c.Write(q); err != nil {
		return nil, fmt.Errorf("upstream %s/udp: %w", upstream, err)
	}
	buf := make([]byte, maxMsg)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("upstream %s/udp: %w", upstream, err)
		}
		// A stray datagram (a late answer to an earlier query on a reused
		// port) is skipped, not returned.
		if answers(q, buf[:n]) {
			return buf[:n:n], nil
		}
	}
}

// answers tells whether resp is a response to q: same ID, same question.
func answers(q, resp []byte) bool {
	var pq, pr dnsmessage.Parser
	hq, err := pq.Start(q)
	if err != nil {
		return false
	}
	hr, err := pr.Start(resp)
	if err != nil || !hr.Response || hr.ID != hq.ID {
		return false
	}
	qq, err1 := pq.Question()
	rq, err2 := pr.Question()
	if err1 != nil || err2 != nil {
		// No question (legal for some opcodes): the ID has to do.
		return errors.Is(err1, dnsmessage.ErrSectionDone) && errors.Is(err2, dnsmessage.ErrSectionDone)
	}
	return qq.Type == rq.Type && qq.Class == rq.Class && ascii.EqualFold(qq.Name.String(), rq.Name.String())
}

func readTCPMsg(c net.Conn) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint16(l[:])
	if n == 0 {
		return nil, errors.New("empty DNS message")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	return b, nil
}

func writeTCPMsg(c net.Conn, m []byte) error {
	if len(m) > maxMsg {
		return fmt.Errorf("DNS message of %d bytes is too long for TCP", len(m))
	}
	b := make([]byte, 2+len(m))
	binary.BigEndian.PutUint16(b, uint16(len(m)))
	copy(b[2:], m)
	_, err := c.Write(b)
	return err
}

type metrics struct {
	local, forwarded, failed prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_dns_queries_total",
		Help: "DNS queries the proxy received, by result: answered locally (a mesh name or an ExternalService host), forwarded to an upstream resolver, or failed (malformed, dropped, or no upstream answered).",
	}, []string{"result"})
	if reg != nil {
		reg.MustRegister(v)
	}
	return &metrics{local: v.WithLabelValues("local"), forwarded: v.WithLabelValues("forwarded"), failed: v.WithLabelValues("failed")}
}
