package h1server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// client is a raw connection to a server under test.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *client) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, raw); err != nil {
		c.t.Fatal(err)
	}
}

// read reads a response to a request of method and its body.
func (c *client) read(method string) (*http.Response, string) {
	c.t.Helper()
	res, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return res, string(b)
}

// closed reports whether the server closed the connection.
func (c *client) closed() bool {
	_ = c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.br.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "reset")
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	w.Write(b)
}

func TestKeepAliveAndPipelining(t *testing.T) {
	var states sync.Map
	srv := &Server{Handler: http.HandlerFunc(echo), ConnState: func(c net.Conn, st http.ConnState) {
		v, _ := states.LoadOrStore(st, new(atomic.Int32))
		v.(*atomic.Int32).Add(1)
	}}
	c := dial(t, serveLean(t, srv))
	for i := range 3 {
		c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
		res, body := c.read("POST")
		if body != "abc" || res.Close {
			t.Fatalf("request %d: %q close=%v", i, body, res.Close)
		}
	}
	// Three pipelined requests, the last asking to close.
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n1" +
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n2\r\n0\r\n\r\n" +
		"POST / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 1\r\n\r\n3")
	for i, want := range []string{"1", "2", "3"} {
		res, body := c.read("POST")
		if body != want || res.Close != (i == 2) {
			t.Fatalf("pipelined %d: %q close=%v", i, body, res.Close)
		}
	}
	if !c.closed() {
		t.Fatal("the connection should close after Connection: close")
	}
	waitFor(t, func() bool {
		v, ok := states.Load(http.StateClosed)
		return ok && v.(*atomic.Int32).Load() == 1
	})
	for st, want := range map[http.ConnState]int32{http.StateNew: 1, http.StateActive: 6, http.StateIdle: 5} {
		if v, _ := states.Load(st); v == nil || v.(*atomic.Int32).Load() != want {
			t.Errorf("state %v reported %v times, want %d", st, v, want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestChunkedResponseWithTrailers(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status")
		w.WriteHeader(http.StatusOK)
		for range 3 {
			io.WriteString(w, strings.Repeat("z", pendingMax))
			w.(http.Flusher).Flush()
			w.Write(nil) // must not end the chunked body
		}
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set(http.TrailerPrefix+"X-Late", "1")
	})}
	c := dial(t, serveLean(t, srv))
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	res, body := c.read("GET")
	if len(body) != 3*pendingMax || res.TransferEncoding[0] != "chunked" {
		t.Fatalf("body %d bytes, te %v", len(body), res.TransferEncoding)
	}
	if res.Trailer.Get("Grpc-Status") != "0" || res.Trailer.Get("X-Late") != "1" {
		t.Fatalf("trailers %v", res.Trailer)
	}
	if _, ok := res.Header["Grpc-Status"]; ok {
		t.Fatal("a trailer leaked into the head")
	}
}

func TestNoContentTypeSniffing(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html>")
	})}
	res, _ := exchange(t, serveLean(t, srv), "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if v, ok := res.Header["Content-Type"]; ok {
		t.Fatalf("Content-Type %q added: a proxy relays the upstream's header as it is", v)
	}
	if res.Header.Get("Date") == "" {
		t.Fatal("no Date")
	}
}

func TestExpectContinue(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(echo)}
	c := dial(t, serveLean(t, srv))
	c.send("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	res, err := http.ReadResponse(c.br, nil)
	if err != nil || res.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue before the body, got %v %v", res, err)
	}
	c.send("data")
	res, body := c.read("PUT")
	if res.StatusCode != http.StatusOK || body != "data" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}

	// A handler that answers without reading: no 100, and the connection
	// closes (the client may or may not send the body).
	refuse := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	})}
	c = dial(t, serveLean(t, refuse))
	c.send("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	res, _ = c.read("PUT")
	if res.StatusCode != http.StatusForbidden || !res.Close {
		t.Fatalf("%d close=%v", res.StatusCode, res.Close)
	}
}

func TestHeaderLimit(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(echo), MaxHeaderBytes: 8 << 10}
	addr := serveLean(t, srv)
	big := "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", 6<<10) + "\r\n\r\n"
	if res, _ := exchange(t, addr, big); res.StatusCode != http.StatusOK {
		t.Fatalf("a 6 KiB header (over the read buffer, under the limit): %d", res.StatusCode)
	}
	huge := "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", 9<<10) + "\r\n\r\n"
	if res, _ := exchange(t, addr, huge); res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 9 KiB header: %d", res.StatusCode)
	}
	long := "GET /" + strings.Repeat("a", 9<<10) + " HTTP/1.1\r\nHost: h\r\n\r\n"
	if res, _ := exchange(t, addr, long); res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 9 KiB request line: %d", res.StatusCode)
	}
}

func TestUnreadBody(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ignored your body")
	})}
	addr := serveLean(t, srv)
	c := dial(t, addr)
	// A small unread body is read past: the connection stays.
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789")
	if res, _ := c.read("POST"); res.Close {
		t.Fatal("closed after a small unread body")
	}
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if res, _ := c.read("GET"); res.StatusCode != http.StatusOK {
		t.Fatal(res.Status)
	}
	// A large one is not: the connection closes.
	c = dial(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10000000\r\n\r\n")
	go func() { _, _ = c.c.Write(make([]byte, maxDrain*2)) }()
	if res, _ := c.read("POST"); !res.Close {
		t.Fatal("kept alive after a large unread body")
	}
}

func TestBodyAfterHandler(t *testing.T) {
	// A transport may read a body after the handler returned: it must get
	// an error, not the next request.
	var leaked atomic.Pointer[io.ReadCloser]
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := r.Body
		leaked.Store(&b)
		w.WriteHeader(http.StatusAccepted)
	})}
	c := dial(t, serveLean(t, srv))
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab")
	c.read("POST")
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\ncd")
	if _, err := (*leaked.Load()).Read(make([]byte, 10)); !errors.Is(err, http.ErrBodyReadAfterClose) {
		t.Fatalf("read after the handler: %v", err)
	}
	if res, _ := c.read("POST"); res.StatusCode != http.StatusAccepted {
		t.Fatal(res.Status)
	}
}

func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})}
	addr := serveLean(t, srv)
	idle := dial(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	idle.read("GET")
	busy := dial(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered

	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	if !idle.closed() {
		t.Fatal("an idle connection should be closed at once")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned with a request in flight: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	res, body := busy.read("GET")
	if body != "done" || !res.Close {
		t.Fatalf("in-flight request: %q close=%v", body, res.Close)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// New connections are refused.
	fc := &fakeConn{}
	srv.ServeConn(fc)
	if !fc.closed {
		t.Fatal("a connection after Shutdown should be closed")
	}
}

// TestShutdownAfterClosedHooks: Shutdown returns only once the ConnState
// hook has seen every connection closed, so a gauge the hook keeps reads
// zero after a drain.
func TestShutdownAfterClosedHooks(t *testing.T) {
	var open atomic.Int64
	srv := &Server{
		Handler: http.HandlerFunc(echo),
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed:
				// A slow hook: Shutdown must still wait for it.
				time.Sleep(20 * time.Millisecond)
				open.Add(-1)
			}
		},
	}
	addr := serveLean(t, srv)
	for range 3 {
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		c.read("GET")
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := open.Load(); n != 0 {
		t.Fatalf("%d connections not seen closed when Shutdown returned", n)
	}
}

// fakeConn is a connection that is only closed.
type fakeConn struct {
	net.Conn
	closed bool
}

func (c *fakeConn) Close() error { c.closed = true; return nil }

func TestShutdownTimeoutAndClose(t *testing.T) {
	ctxSeen := make(chan context.Context, 1)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctxSeen <- r.Context()
		<-r.Context().Done()
	})}
	c := dial(t, serveLean(t, srv))
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	ctx := <-ctxSeen
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	srv.Close()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not cancel the request's context")
	}
	if !c.closed() {
		t.Fatal("Close left the connection open")
	}
}

func TestTimeouts(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 200 * time.Millisecond}
	addr := serveLean(t, srv)
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost:")
	start := time.Now()
	if !c.closed() || time.Since(start) > time.Second {
		t.Fatal("a slow head should time out")
	}
	c = dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	time.Sleep(150 * time.Millisecond) // past the header timeout, within the idle one
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	start = time.Now()
	if !c.closed() || time.Since(start) > time.Second {
		t.Fatal("an idle connection should time out")
	}
}

func TestHijack(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		// Bytes the client sent behind the head are in the reader.
		line, _ := rw.ReadString('\n')
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\necho:" + line)
		rw.Flush()
	})}
	var hijacked atomic.Int32
	srv.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateHijacked {
			hijacked.Add(1)
		}
	}
	c := dial(t, serveLean(t, srv))
	c.send("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\nhello\n")
	res, err := http.ReadResponse(c.br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatal(res, err)
	}
	rest, _ := c.br.ReadString('\n')
	if rest != "echo:hello\n" || hijacked.Load() != 1 {
		t.Fatalf("%q, hijacked %d", rest, hijacked.Load())
	}
}

func TestH2PrefaceFallback(t *testing.T) {
	got := make(chan string, 1)
	srv := &Server{Handler: http.HandlerFunc(echo), Fallback: func(c net.Conn) {
		defer c.Close()
		if Unwrap(c) == c {
			t.Error("Unwrap should return the connection underneath")
		}
		b := make([]byte, 24)
		_, err := io.ReadFull(c, b)
		if err != nil {
			t.Error(err)
		}
		got <- string(b)
	}}
	c := dial(t, serveLean(t, srv))
	// In two writes: the server must wait for "PRI " whole.
	c.send("PR")
	time.Sleep(20 * time.Millisecond)
	c.send("I * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	if s := <-got; s != "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
		t.Fatalf("fallback read %q", s)
	}
	// "P" starting an HTTP/1 request is not the preface.
	c = dial(t, serveLean(t, srv))
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx")
	if _, body := c.read("POST"); body != "x" {
		t.Fatal(body)
	}
}

func TestHandlerPanics(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})}
	c := dial(t, serveLean(t, srv))
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Fatal("an aborted response should end in an error, not a clean end")
	}
}

func TestClientGoneCancelsContext(t *testing.T) {
	cancelled := make(chan struct{})
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for r.Context().Err() == nil {
			w.Write(make([]byte, 32<<10))
			w.(http.Flusher).Flush()
		}
		close(cancelled)
	})}
	c := dial(t, serveLean(t, srv))
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, err := http.ReadResponse(c.br, nil); err != nil {
		t.Fatal(err)
	}
	c.c.(*net.TCPConn).SetLinger(0)
	c.c.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("a failed write should cancel the request's context")
	}
}

func TestConnContext(t *testing.T) {
	type key struct{}
	srv := &Server{
		BaseContext: context.WithValue(context.Background(), key{}, "base"),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, key{}, ctx.Value(key{}).(string)+"+conn")
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Context().Value(key{}).(string))
		}),
	}
	if _, body := exchange(t, serveLean(t, srv), "GET / HTTP/1.1\r\nHost: h\r\n\r\n"); body != "base+conn" {
		t.Fatal(body)
	}
}

// A handler that releases its request gets the connection's next request
// in the same memory, with none of the earlier one's fields; one that does
// not gets a new request each time.
func TestReleasedRequestIsReused(t *testing.T) {
	for _, release := range []bool{true, false} {
		var reqs []*http.Request
		var headers []http.Header
		var seen []string
		srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reqs = append(reqs, r)
			headers = append(headers, r.Header)
			var names []string
			for k := range r.Header {
				names = append(names, k)
			}
			slices.Sort(names)
			seen = append(seen, r.Method+" "+r.URL.Path+" "+strings.Join(names, ","))
			if release {
				w.(interface{ ReleaseRequest() }).ReleaseRequest()
			}
			echo(w, r)
		})}
		c := dial(t, serveLean(t, srv))
		c.send("POST /a HTTP/1.1\r\nHost: h\r\nX-First: 1\r\nContent-Length: 1\r\n\r\na")
		c.read("POST")
		c.send("GET /b HTTP/1.1\r\nHost: h\r\nX-Second: 2\r\n\r\n")
		c.read("GET")
		c.send("POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz")
		if _, body := c.read("POST"); body != "xyz" {
			t.Errorf("release %v: third request's body read as %q", release, body)
		}
		want := []string{"POST /a Content-Length,X-First", "GET /b X-Second", "POST /c Content-Length"}
		if !slices.Equal(seen, want) {
			t.Errorf("release %v: handler saw %q, want %q", release, seen, want)
		}
		sameReq := reqs[0] == reqs[1]
		sameHeader := reflect.ValueOf(headers[0]).UnsafePointer() == reflect.ValueOf(headers[1]).UnsafePointer()
		if sameReq != release || sameHeader != release {
			t.Errorf("release %v: same request %v, same header map %v", release, sameReq, sameHeader)
		}
	}
}

// Plain origin-form targets are read without net/url; the rest by it.
func TestOriginForm(t *testing.T) {
	for target, plain := range map[string]bool{
		"/": true, "/a/b.c": true, "/p?q=1&r=%20": true, "/p?": true, "/p??": true, "/a;b=c:d@e,f+g$h&i~": true,
		"/a%20b": false, "/a b": false, "/é": false, "/a#f": false, "/a(b)": false, "*": false, "http://h/": false, "": false,
	} {
		var u url.URL
		if got := originForm(target, &u); got != plain {
			t.Errorf("%q: read as plain %v, want %v", target, got, plain)
		}
	}
}

// On a kept-alive connection the header timeout still bounds a head that
// arrives in pieces, and a body that arrives slowly has no deadline, now
// that a head or body already read moves no deadline.
func TestTimeoutsOfLaterRequests(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 5 * time.Second}
	addr := serveLean(t, srv)

	c := dial(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nabc")
	time.Sleep(250 * time.Millisecond) // past the header timeout
	c.send("def")
	if _, body := c.read("POST"); body != "abcdef" {
		t.Fatalf("a slow body: %q", body)
	}
	c.send("GET / HTTP/1.1\r\nHost:")
	start := time.Now()
	if !c.closed() || time.Since(start) > 2*time.Second {
		t.Fatal("a second request's slow head should time out at the header timeout, not the idle one")
	}
}
