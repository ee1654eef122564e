package h1server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Buffer sizes: a request head fits the reader's, a response head and a
// small body the writer's, in one system call.
const (
	readBufferSize  = 4 << 10
	writeBufferSize = 4 << 10
)

// lingerTimeout bounds how long a connection closed on a refused or
// unread request keeps reading what the client still sends, so that the
// client reads the response before it sees a reset (net/http waits as
// long).
const lingerTimeout = 500 * time.Millisecond

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}
)

// Connection states, for Shutdown: an idle connection (waiting for a
// request) is closed at once; an active one finishes its request first.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed // closed by Shutdown while idle
)

// conn is one connection and the state its goroutine keeps across
// requests.
type conn struct {
	srv    *Server
	rwc    net.Conn
	remote string
	tls    *tls.ConnectionState
	// ctx is every request's context; it ends with the connection, on a
	// failed write to the client, and on Server.Close.
	ctx    context.Context
	cancel context.CancelFunc
	// tmpl is a request with the per-connection fields and ctx set: each
	// request starts as its copy.
	tmpl *http.Request

	br *bufio.Reader
	bw *bufio.Writer
	w  response

	state atomic.Int32
	// wmu orders a "100 Continue", which a body read may send from
	// another goroutine, with the response head; started is set once the
	// head is on its way.
	wmu     sync.Mutex
	started bool

	scratch []byte // a head that outgrows br
	// spare is a request its handler released (ReleaseRequest): the next
	// request is read into it, its header map, URL and body.
	spare     *http.Request
	spareBody *body
	hijacked  bool
	handedOff bool
	// linger says the client may still be sending: close gently.
	linger bool
}

func newConn(s *Server, rwc net.Conn) *conn {
	c := &conn{srv: s, rwc: rwc, remote: rwc.RemoteAddr().String()}
	if tc, ok := rwc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tls = &st
	}
	ctx := s.BaseContext
	if ctx == nil {
		ctx = context.Background()
	}
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, rwc)
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.tmpl = (&http.Request{RemoteAddr: c.remote, TLS: c.tls}).WithContext(c.ctx)
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(rwc)
	c.bw = writers.Get().(*bufio.Writer)
	c.bw.Reset((*connWriter)(c))
	c.w.c = c
	c.w.header = make(http.Header)
	return c
}

// connWriter is the buffered writer's destination: a failed write means
// the client is gone, which the requests' context then says.
type connWriter conn

func (w *connWriter) Write(p []byte) (int, error) {
	n, err := w.rwc.Write(p)
	if err != nil {
		w.cancel()
	}
	return n, err
}

// serve runs the connection's request loop.
func (c *conn) serve() {
	defer c.end()
	for first := true; ; first = false {
		if !c.awaitRequest(first) {
			return
		}
		if first && c.tls == nil && c.srv.Fallback != nil && c.h2Preface() {
			c.handOff()
			return
		}
		req, b, err := c.readRequest()
		if err != nil {
			c.refuse(err)
			return
		}
		if !c.serveRequest(req, b) {
			return
		}
		if !c.idle() {
			return
		}
	}
}

// awaitRequest waits for the first byte of the next request — within
// ReadHeaderTimeout of the connection's start for the first, within
// IdleTimeout for the others — then gives the rest of the head
// ReadHeaderTimeout, unless the whole head has already arrived (nearly
// always): each deadline set is a timer moved in the runtime. It reports
// false when the connection is to close.
func (c *conn) awaitRequest(first bool) bool {
	if first {
		c.setReadTimeout(c.srv.ReadHeaderTimeout)
	} else if c.br.Buffered() == 0 {
		c.setReadTimeout(c.srv.IdleTimeout)
	}
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	if !c.state.CompareAndSwap(stateIdle, stateActive) {
		return false // closed by Shutdown
	}
	c.srv.setState(c.rwc, http.StateActive)
	if !first && !c.headBuffered() {
		c.setReadTimeout(c.srv.ReadHeaderTimeout)
	}
	return true
}

// headBuffered reports whether the reader holds a whole request head, and
// reading it needs no read from the connection: the end of the head
// (CRLF CRLF) after the empty lines that may precede a request.
func (c *conn) headBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	b = bytes.TrimLeft(b, "\r\n")
	return bytes.Contains(b, headEnd)
}

var headEnd = []byte("\r\n\r\n")

// idle makes the connection idle after a response; false when the server
// is shutting down.
func (c *conn) idle() bool {
	if c.srv.shuttingDown() {
		return false
	}
	c.state.Store(stateIdle)
	c.srv.setState(c.rwc, http.StateIdle)
	// Shutdown may have looked before the store: look again.
	return !c.srv.shuttingDown()
}

// closeIfIdle closes the connection if it waits for a request (Shutdown).
func (c *conn) closeIfIdle() {
	if c.state.CompareAndSwap(stateIdle, stateClosed) {
		c.rwc.Close()
	}
}

func (c *conn) setReadTimeout(d time.Duration) {
	if d > 0 {
		_ = c.rwc.SetReadDeadline(time.Now().Add(d))
	} else {
		_ = c.rwc.SetReadDeadline(time.Time{})
	}
}

// readRequest reads the next request's head and sets up its body, into
// the memory of the previous request if its handler released it.
func (c *conn) readRequest() (*http.Request, *body, error) {
	req, b := c.spare, c.spareBody
	c.spare, c.spareBody = nil, nil
	var h http.Header
	var u *url.URL
	if req != nil {
		h, u = req.Header, req.URL
		clear(h)
	} else {
		req, u = new(http.Request), new(url.URL)
	}
	*req = *c.tmpl
	req.Header, req.URL = h, u
	f, err := parseRequest(c.br, c.srv.maxHeaderBytes(), &c.scratch, req)
	if err != nil {
		return nil, nil, err
	}
	if f.length == 0 {
		req.Body = http.NoBody
		return req, nil, nil
	}
	if b == nil {
		b = new(body)
	}
	b.reset(c, f)
	req.Body = b
	return req, b, nil
}

// parseRequest reads a request head from br into req and tells how its
// body is framed.
func parseRequest(br *bufio.Reader, limit int, scratch *[]byte, req *http.Request) (framing, error) {
	head, err := readHead(br, limit, scratch)
	if err != nil {
		return framing{}, err
	}
	if err := parseHead(req, head); err != nil {
		return framing{}, err
	}
	return parseFraming(req)
}

// serveRequest runs the handler and completes its response. It reports
// whether the connection can serve another request.
func (c *conn) serveRequest(req *http.Request, b *body) bool {
	c.started = false
	w := &c.w
	w.reset(req, b)
	if b != nil && !b.buffered() {
		// A body is read at the client's pace, as with net/http's server
		// without a ReadTimeout. One already read needs no deadline
		// moved.
		_ = c.rwc.SetReadDeadline(time.Time{})
	}
	keep := c.runHandler(w, req) && !w.hijacked && w.finish()
	if keep && w.released {
		c.spare, c.spareBody = req, b
	}
	if b != nil {
		if !keep && !w.hijacked {
			// A read of the body blocked on the client ends soon, and
			// the client gets a moment to read the response (end).
			_ = c.rwc.SetReadDeadline(time.Now().Add(lingerTimeout))
			c.linger = true
		}
		// A transport may still hold the body after the handler: it must
		// not read the next request (or, once the buffers are pooled,
		// another connection's).
		b.Close()
	}
	return keep
}

// runHandler calls the handler; a panic ends the connection after what
// the handler wrote is flushed (net/http does the same), and is logged
// unless it is http.ErrAbortHandler.
func (c *conn) runHandler(w *response, req *http.Request) (ok bool) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		ok = false
		if p != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.logf("h1server: panic serving a request", "remote", c.remote, "panic", fmt.Sprint(p), "stack", string(buf))
		}
		if !w.hijacked {
			_ = c.bw.Flush()
		}
	}()
	c.srv.Handler.ServeHTTP(w, req)
	return true
}

// writeContinue sends "100 Continue" unless the response has started.
func (c *conn) writeContinue() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.started {
		return nil
	}
	_, _ = c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return c.bw.Flush()
}

// startResponse marks the response as started: no "100 Continue" after.
func (c *conn) startResponse() {
	c.wmu.Lock()
	c.started = true
	c.wmu.Unlock()
}

// refuse answers a request the server cannot serve, when the client can
// still read the answer, and closes gently.
func (c *conn) refuse(err error) {
	var re *requestError
	if !errors.As(err, &re) {
		return // the client left, or timed out: nobody to answer
	}
	text := http.StatusText(re.code)
	msg := fmt.Sprintf("%d %s: %s", re.code, text, re.reason)
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		re.code, text, len(msg), msg)
	_ = c.bw.Flush()
	c.linger = true
}

// hijack hands the connection to the handler.
func (c *conn) hijack() (net.Conn, *bufio.ReadWriter, error) {
	c.hijacked = true
	_ = c.rwc.SetReadDeadline(time.Time{})
	c.srv.setState(c.rwc, http.StateHijacked)
	c.srv.untrack(c)
	return c.rwc, bufio.NewReadWriter(c.br, c.bw), nil
}

// h2Preface reports whether the connection opens with HTTP/2's preface,
// "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": no HTTP/1 request starts with "PRI ".
func (c *conn) h2Preface() bool {
	const pri = "PRI "
	b, _ := c.br.Peek(min(c.br.Buffered(), len(pri)))
	if string(b) != pri[:len(b)] {
		return false
	}
	b, err := c.br.Peek(len(pri))
	return err == nil && string(b) == pri
}

// handOff gives the connection, with the bytes read so far, to Fallback.
func (c *conn) handOff() {
	c.handedOff = true
	_ = c.rwc.SetReadDeadline(time.Time{})
	buffered, _ := c.br.Peek(c.br.Buffered())
	rc := &replayConn{Conn: c.rwc, pending: append([]byte(nil), buffered...)}
	c.srv.setState(c.rwc, http.StateHijacked)
	c.srv.untrack(c)
	c.releaseBuffers()
	c.srv.Fallback(rc)
}

// end closes the connection, unless it was hijacked or handed off.
func (c *conn) end() {
	c.cancel()
	if c.hijacked || c.handedOff {
		return
	}
	if c.linger {
		c.closeGently()
	}
	c.rwc.Close()
	// The state first: Shutdown returns once the last connection is
	// untracked, and by then every ConnState hook has seen it closed.
	c.srv.setState(c.rwc, http.StateClosed)
	c.srv.untrack(c)
	c.releaseBuffers()
}

// closeGently stops sending and reads what the client still sends for a
// moment: closing a socket with unread data resets it, and the reset can
// overtake the response at the client.
func (c *conn) closeGently() {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.rwc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, c.rwc)
}

func (c *conn) releaseBuffers() {
	c.br.Reset(nil)
	readers.Put(c.br)
	c.bw.Reset(nil)
	writers.Put(c.bw)
	c.br, c.bw = nil, nil
}
