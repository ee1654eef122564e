package cluster

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"os"
	"sync"
	"syscall"
	"time"
)

// h1Transport is a pool's HTTP/1.1 client: to the local app behind an
// inbound listener, and to other proxies (mutual TLS, ALPN http/1.1) for
// requests that came as HTTP/1.1. It writes a request and reads its
// response on the caller's goroutine over kept-alive connections, where
// net/http's Transport hands each request to a writer goroutine and each
// response back from a reader goroutine: two goroutine hand-offs and their
// wake-ups per request, on every request the mesh delivers to an app.
//
// What it does not handle goes to next: request bodies of unknown length or
// over h1MaxBody (written whole before the response is read, a large body
// could deadlock against an app that answers early), Transfer-Encoding,
// request trailers, Expect: 100-continue, and CONNECT.
type h1Transport struct {
	p    *Pool
	next http.RoundTripper

	mu   sync.Mutex
	idle map[string][]*h1Conn // by address, most recently used last
	// waiters are requests waiting for a connection to an address while
	// max_connections are open: a connection put back goes to the first.
	waiters map[string][]chan *h1Conn
	closed  bool
}

// h1MaxBody is the largest request body h1Transport sends itself.
const h1MaxBody = 64 << 10

// h1StaleAfter is how long a connection may sit idle before it is checked
// for a close by the app before reuse (Node.js closes idle connections
// after 5 s, for example). Busier connections are reused unchecked.
const h1StaleAfter = time.Second

// A connection's buffers: a response head fits the reader's; the writer's
// takes a request head and a small body in one system call.
const (
	h1ReadBuffer  = 4 << 10
	h1WriteBuffer = 8 << 10
)

type h1Conn struct {
	net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	addr   string
	idleAt time.Time
	reused bool
	// read counts the bytes read from Conn: a reply that failed with none
	// read never started.
	read int64
	// body limits a request body to its length while it is written.
	body io.LimitedReader
	// scratch gathers a response head or trailer larger than br's buffer.
	scratch []byte
	// interrupt ends the I/O in progress: bound once, it is what each
	// exchange's context runs when it is done.
	interrupt func()
}

// h1Reader counts what the buffered reader takes from the connection.
type h1Reader struct{ c *h1Conn }

func (r h1Reader) Read(p []byte) (int, error) {
	n, err := r.c.Conn.Read(p)
	r.c.read += int64(n)
	return n, err
}

func newH1Transport(p *Pool, next http.RoundTripper) *h1Transport {
	return &h1Transport{p: p, next: next, idle: map[string][]*h1Conn{}, waiters: map[string][]chan *h1Conn{}}
}

func (t *h1Transport) handles(req *http.Request) bool {
	if req.Method == http.MethodConnect || len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && (req.ContentLength <= 0 || req.ContentLength > h1MaxBody) {
		return false
	}
	_, expect := req.Header["Expect"]
	return !expect
}

// RoundTrip sends req and returns the response head; its body reads from
// the connection, which goes back to the pool once the body is read to its
// end.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.handles(req) {
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		c, err := t.get(ctx, req.URL.Host)
		if err != nil {
			return nil, err
		}
		// The circuit breaker counts a request as pending until it has a
		// connection, as with net/http's transport.
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.GotConn != nil {
			trace.GotConn(httptrace.GotConnInfo{Conn: c.Conn, Reused: c.reused, WasIdle: c.reused})
		}
		before := c.read
		res, err := t.exchange(ctx, c, req)
		if err == nil {
			return res, nil
		}
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// An idle connection the app closed meanwhile fails before a byte
		// of the response: send again, once, on a new connection, if the
		// request can be sent again.
		if c.reused && attempt == 0 && c.read == before && hungUp(err) && resendable(req) {
			continue
		}
		return nil, err
	}
}

// hungUp says the peer closed the connection.
func hungUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// resendable reports whether req can be written a second time.
func resendable(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	if req.GetBody == nil {
		return false
	}
	b, err := req.GetBody()
	if err != nil {
		return false
	}
	req.Body = b
	return true
}

// exchange writes req on c and reads the response head.
func (t *h1Transport) exchange(ctx context.Context, c *h1Conn, req *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(ctx, c.interrupt)
	if err := writeRequest(c.bw, req, &c.body); err != nil {
		stop()
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	r := h1Responses.Get().(*h1Response)
	res := &r.res
	kind, err := r.read(c.br, req, &c.scratch)
	// 1xx responses (100 Continue, 103 Early Hints) are informational:
	// the final response follows on the same connection. As net/http's
	// transport, a few are read, not an endless stream of them.
	for informational := 1; err == nil && res.StatusCode < 200 && res.StatusCode != http.StatusSwitchingProtocols; informational++ {
		if informational > max1xx {
			err = badResponse("more than %d informational (1xx) responses", max1xx)
			break
		}
		kind, err = r.read(c.br, req, &c.scratch)
	}
	if err != nil {
		stop()
		r.recycle()
		return nil, err
	}
	keep := !res.Close && !req.Close && res.StatusCode != http.StatusSwitchingProtocols
	b := &r.body
	if kind == noBody {
		// Done already: Recycle finds the response through its body.
		*b = h1Body{owner: r, done: true}
		res.Body = b
		t.done(c, stop, keep)
		return res, nil
	}
	*b = h1Body{owner: r, c: c, t: t, res: res, stop: stop, keep: keep, kind: kind, remaining: res.ContentLength}
	if kind == chunkedBody {
		b.chunks = httputil.NewChunkedReader(c.br)
	}
	res.Body = b
	return res, nil
}

// h1Response is the memory of a response h1Transport reads: the response,
// its body and its header map, allocated once and reused through
// h1Responses when the caller recycles the response (Recycle).
type h1Response struct {
	res     http.Response
	body    h1Body
	release releaseBody // what Cluster.RoundTrip wraps body in
	header  http.Header // res.Header's map, kept empty across uses
}

var h1Responses = sync.Pool{New: func() any { return new(h1Response) }}

// read reads the next response head into r, its header into r's map.
func (r *h1Response) read(br *bufio.Reader, req *http.Request, scratch *[]byte) (bodyKind, error) {
	clear(r.header)
	r.res = http.Response{Header: r.header}
	kind, err := readResponse(br, req, scratch, &r.res)
	r.header = r.res.Header
	return kind, err
}

// recycle puts r back in the pool; nothing may use it after.
func (r *h1Response) recycle() {
	*r = h1Response{header: r.header}
	h1Responses.Put(r)
}

// Released reports whether the transport that answered a request with
// res is done with the request — its URL, Header and Body — now that
// RoundTrip has returned: the lean HTTP/1.1 transport writes and reads on
// the caller's goroutine, where net/http's transports may still write the
// request from a goroutine of their own. A caller that reuses a request's
// memory asks first. Without a response (an error) the answer is false.
func Released(res *http.Response) bool {
	return leanBody(res) != nil
}

// Recycle hands the memory of a response from Cluster.RoundTrip back for
// the next response to use, once its body is closed or read to its end.
// The caller must not use res, its Header or its Trailer afterwards. A
// response whose body is still open, or that is not from h1Transport, is
// left to the garbage collector.
func Recycle(res *http.Response) {
	if b := leanBody(res); b != nil && b.done {
		b.owner.recycle()
	}
}

// leanBody returns the body of a response h1Transport read, or nil.
func leanBody(res *http.Response) *h1Body {
	if res == nil {
		return nil
	}
	body := res.Body
	if rb, ok := body.(*releaseBody); ok {
		body = rb.ReadCloser
	}
	if b, ok := body.(*h1Body); ok && b.owner != nil && &b.owner.res == res {
		return b
	}
	return nil
}

// max1xx is how many informational responses may precede the final one.
const max1xx = 5

// aLongTimeAgo is a deadline in the past: it interrupts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// done ends an exchange: the connection goes back to the pool if it may
// carry another request and the exchange's context did not interrupt it.
func (t *h1Transport) done(c *h1Conn, stop func() bool, keep bool) {
	if !stop() || !keep {
		c.Close()
		return
	}
	t.put(c)
}

// get returns an idle connection to addr, or dials one.
func (t *h1Transport) get(ctx context.Context, addr string) (*h1Conn, error) {
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[addr]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		c := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[addr] = list[:len(list)-1]
		t.mu.Unlock()
		idle := now.Sub(c.idleAt)
		if idle > t.p.settings.IdleTimeout || (idle > h1StaleAfter && closedByPeer(c)) {
			c.Close()
			continue
		}
		c.reused = true
		return c, nil
	}
	if t.p.connSlots != nil {
		select {
		case t.p.connSlots <- struct{}{}:
		default:
			// Every connection is taken: wait for one to come back, or for
			// a slot to free up.
			w := make(chan *h1Conn, 1)
			t.mu.Lock()
			t.waiters[addr] = append(t.waiters[addr], w)
			t.mu.Unlock()
			select {
			case c := <-w:
				c.reused = true
				return c, nil
			case t.p.connSlots <- struct{}{}:
				if !t.unwait(addr, w) {
					// A connection was handed over meanwhile: use it.
					t.p.releaseConn()
					c := <-w
					c.reused = true
					return c, nil
				}
			case <-ctx.Done():
				if !t.unwait(addr, w) {
					t.put(<-w)
				}
				return nil, ctx.Err()
			}
		}
	}
	return t.dial(ctx, addr)
}

// unwait removes w from the waiters of addr; false means a connection was
// handed to it first.
func (t *h1Transport) unwait(addr string, w chan *h1Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.waiters[addr]
	for i, x := range list {
		if x == w {
			t.waiters[addr] = append(list[:i:i], list[i+1:]...)
			return true
		}
	}
	return false
}

// dial opens a connection to addr; the caller holds its slot, if the pool
// has max_connections.
func (t *h1Transport) dial(ctx context.Context, addr string) (*h1Conn, error) {
	h := t.p.host(addr)
	var raw net.Conn
	var err error
	if t.p.connSlots != nil {
		raw, err = t.p.dialHeld(ctx, addr, h)
	} else {
		raw, err = t.p.connect(ctx, addr, h, true)
	}
	if err != nil {
		return nil, err
	}
	var conn net.Conn = &trackedConn{Conn: raw, host: h, pool: t.p}
	if t.p.settings.TLS != nil {
		hctx, cancel := context.WithTimeout(ctx, t.p.settings.ConnectTimeout)
		conn, err = t.p.clientTLS(hctx, conn, addr, h, t.p.upgradeTLS)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	c := &h1Conn{Conn: conn, bw: bufio.NewWriterSize(conn, h1WriteBuffer), addr: addr}
	c.br = bufio.NewReaderSize(h1Reader{c}, h1ReadBuffer)
	c.interrupt = func() { _ = c.SetDeadline(aLongTimeAgo) }
	return c, nil
}

// closedByPeer checks an idle connection for a close (or stray bytes, which
// make it unusable too) without waiting.
func closedByPeer(c *h1Conn) bool {
	if c.br.Buffered() > 0 {
		return true
	}
	if err := c.SetReadDeadline(time.Now()); err != nil {
		return true
	}
	_, err := c.br.Peek(1)
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	return c.SetReadDeadline(time.Time{}) != nil
}

// put keeps c for another request: the first waiting for one, or the
// idle list.
func (t *h1Transport) put(c *h1Conn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	if ws := t.waiters[c.addr]; len(ws) > 0 && !t.closed {
		w := ws[0]
		t.waiters[c.addr] = ws[1:]
		t.mu.Unlock()
		w <- c // buffered: never blocks
		return
	}
	if t.closed || len(t.idle[c.addr]) >= maxIdlePerHost {
		t.mu.Unlock()
		c.Close()
		return
	}
	t.idle[c.addr] = append(t.idle[c.addr], c)
	t.mu.Unlock()
}

// CloseIdleConnections closes the idle connections, here and in next.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*h1Conn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.Close()
		}
	}
	if n, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		n.CloseIdleConnections()
	}
}

// h1Body is a response body read from its connection, delimited as its
// head said, which it hands back to the pool at its end.
type h1Body struct {
	owner *h1Response
	c     *h1Conn
	t     *h1Transport
	res   *http.Response // whose Trailer a chunked body fills
	stop  func() bool
	keep  bool
	done  bool

	kind      bodyKind
	remaining int64     // of a sized body
	chunks    io.Reader // the decoder of a chunked body
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.read(p)
	if err == io.EOF {
		b.done = true
		b.t.done(b.c, b.stop, b.keep)
	} else if err != nil {
		b.done = true
		b.stop()
		b.c.Close()
	}
	return n, err
}

func (b *h1Body) read(p []byte) (int, error) {
	switch b.kind {
	case sizedBody:
		if len(p) == 0 {
			return 0, nil
		}
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err := b.c.br.Read(p)
		b.remaining -= int64(n)
		if b.remaining == 0 {
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	case chunkedBody:
		n, err := b.chunks.Read(p)
		if err == io.EOF {
			if terr := readTrailer(b.c.br, b.res, &b.c.scratch); terr != nil {
				return n, terr
			}
		}
		return n, err
	default: // closeBody: the rest of the connection
		return b.c.br.Read(p)
	}
}

// Close ends the body; a body not read to its end closes the connection,
// which is then in the middle of a response.
func (b *h1Body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	b.stop()
	return b.c.Close()
}
