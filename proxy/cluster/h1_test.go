package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// h1Server counts the connections an HTTP/1.1 test server accepts.
func h1Server(t *testing.T, h http.Handler) (addr string, conns *atomic.Int64, srv *httptest.Server) {
	t.Helper()
	conns = &atomic.Int64{}
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), conns, srv
}

func h1Get(t *testing.T, rt http.RoundTripper, method, addr, path string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+path, body)
	res, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, path, err)
	}
	return res, string(b)
}

func TestH1KeepsConnectionsAlive(t *testing.T) {
	addr, conns, _ := h1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		io.WriteString(w, r.URL.Path+":"+string(b))
	}))
	p := NewPool(Settings{Name: "app"})
	defer p.Close()
	if _, ok := p.transport.(*h1Transport); !ok {
		t.Fatalf("a plaintext HTTP/1.1 pool uses %T", p.transport)
	}
	for i, tc := range []struct{ method, path, body, want string }{
		{"GET", "/a", "", "/a:"},
		{"POST", "/b", "hello", "/b:hello"},
		{"HEAD", "/c", "", ""},
		{"GET", "/empty", "", ""},
		{"GET", "/d", "", "/d:"},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		res, got := h1Get(t, p.transport, tc.method, addr, tc.path, body)
		if got != tc.want || res.Header.Get("X-Method") != tc.method {
			t.Fatalf("request %d: %q (%s), want %q", i, got, res.Header.Get("X-Method"), tc.want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 5 sequential requests, want 1 kept alive", n)
	}
}

// A connection the app closed while idle is noticed: the request goes again
// on a new connection instead of failing.
func TestH1ReplacesStaleConnection(t *testing.T) {
	addr, conns, srv := h1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	p := NewPool(Settings{Name: "app"})
	defer p.Close()
	h1Get(t, p.transport, "GET", addr, "/", nil)
	srv.CloseClientConnections() // the app drops its idle keep-alive connections
	time.Sleep(50 * time.Millisecond)
	if _, got := h1Get(t, p.transport, "GET", addr, "/", nil); got != "ok" {
		t.Fatalf("after the app closed the idle connection: %q", got)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// A body not read to its end, or a cancelled request, never leaves a
// connection in the middle of a response in the pool.
func TestH1AbandonedResponsesCloseTheConnection(t *testing.T) {
	release := make(chan struct{})
	addr, conns, _ := h1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/big":
			io.WriteString(w, strings.Repeat("x", 1<<20))
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer close(release)
	p := NewPool(Settings{Name: "app"})
	defer p.Close()

	req, _ := http.NewRequest("GET", "http://"+addr+"/big", nil)
	res, err := p.transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	io.ReadFull(res.Body, buf)
	res.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/slow", nil)
	if _, err := p.transport.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled request: %v, want the context's error", err)
	}

	if _, got := h1Get(t, p.transport, "GET", addr, "/", nil); got != "ok" {
		t.Fatalf("next request: %q", got)
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3: neither abandoned one was reused", n)
	}
}

// What the lean transport does not send itself goes to net/http's.
func TestH1Fallbacks(t *testing.T) {
	var h1 h1Transport
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		lean bool
	}{
		{"no body", func() *http.Request { r, _ := http.NewRequest("GET", "http://x/", nil); return r }, true},
		{"small body", func() *http.Request { r, _ := http.NewRequest("POST", "http://x/", strings.NewReader("abc")); return r }, true},
		{"large body", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://x/", strings.NewReader(strings.Repeat("x", h1MaxBody+1)))
			return r
		}, false},
		{"unknown length", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://x/", io.NopCloser(strings.NewReader("abc")))
			return r
		}, false},
		{"expect continue", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://x/", strings.NewReader("abc"))
			r.Header.Set("Expect", "100-continue")
			return r
		}, false},
	} {
		if got := h1.handles(tc.req()); got != tc.lean {
			t.Errorf("%s: lean %v, want %v", tc.name, got, tc.lean)
		}
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestH1AddsNoUserAgent: a proxy relays the caller's User-Agent, or none;
// it never makes one up (net/http's Request.Write would add Go's).
func TestH1AddsNoUserAgent(t *testing.T) {
	var got atomic.Value
	addr, _, _ := h1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Values("User-Agent"))
	}))
	p := NewPool(Settings{Name: "app"})
	defer p.Close()
	c := New("app", p, roundRobin(), []EndpointSpec{{Address: addr, Healthy: true}})
	ep := c.Endpoints()[0]
	rt := roundTripperFunc(func(req *http.Request) (*http.Response, error) { return c.RoundTrip(req, ep) })
	h1Get(t, rt, http.MethodGet, addr, "/", nil)
	if ua := got.Load().([]string); len(ua) != 0 {
		t.Errorf("a request without a User-Agent arrived with %q", ua)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set("User-Agent", "curl/8.0")
	res, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if ua := got.Load().([]string); len(ua) != 1 || ua[0] != "curl/8.0" {
		t.Errorf("the caller's User-Agent arrived as %q", ua)
	}
}

// TestH2AddsNoUserAgent: nor over HTTP/2 (net/http's client would add
// Go-http-client/2.0).
func TestH2AddsNoUserAgent(t *testing.T) {
	c := h2cCluster(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%q", r.Header.Values("User-Agent"))
	}))
	ep := c.Endpoints()[0]
	rt := roundTripperFunc(func(req *http.Request) (*http.Response, error) { return c.RoundTrip(req, ep) })
	if _, body := h1Get(t, rt, http.MethodGet, "ignored", "/", nil); body != "[]" {
		t.Errorf("a request without a User-Agent arrived with %s", body)
	}
}

// writeCounter counts the writes that reach a connection.
type writeCounter struct {
	net.Conn
	writes atomic.Int64
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes.Add(1)
	return w.Conn.Write(p)
}

// TestH1HeadAndSmallBodyLeaveInOneWrite: a request with a small body the
// transport cannot see in memory (a downstream connection's, as a proxy
// forwards) is one write on the upstream connection, not its head and
// then its body; a larger one leaves in writes of the buffer's size, its
// head with the start of the body.
func TestH1HeadAndSmallBodyLeaveInOneWrite(t *testing.T) {
	for _, tc := range []struct {
		size       int
		wantWrites int64
	}{
		{size: 1024, wantWrites: 1},
		{size: h1WriteBuffer / 2, wantWrites: 1},
		{size: 4 * h1WriteBuffer, wantWrites: 5},
	} {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			defer server.Close()
			got := make(chan string, 1)
			go func() {
				req, err := http.ReadRequest(bufio.NewReader(server))
				if err != nil {
					got <- err.Error()
					return
				}
				b, _ := io.ReadAll(req.Body)
				got <- fmt.Sprintf("%s %d", req.Method, len(b))
				io.WriteString(server, "HTTP/1.1 204 No Content\r\n\r\n")
			}()
			wc := &writeCounter{Conn: client}
			c := &h1Conn{Conn: wc, bw: bufio.NewWriterSize(wc, h1WriteBuffer)}
			c.br = bufio.NewReaderSize(h1Reader{c}, h1ReadBuffer)
			p := NewPool(Settings{Name: "app"})
			defer p.Close()
			tr := p.transport.(*h1Transport)
			body := struct{ io.Reader }{strings.NewReader(strings.Repeat("x", tc.size))}
			req, _ := http.NewRequest(http.MethodPost, "http://app/", body)
			req.ContentLength = int64(tc.size)
			res, err := tr.exchange(context.Background(), c, req)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusNoContent {
				t.Fatalf("status %d", res.StatusCode)
			}
			if s := <-got; s != fmt.Sprintf("POST %d", tc.size) {
				t.Fatalf("server read %q", s)
			}
			if n := wc.writes.Load(); n != tc.wantWrites {
				t.Errorf("%d bytes of body went out in %d writes, want %d", tc.size, n, tc.wantWrites)
			}
		})
	}
}

// TestH1InformationalResponses: 1xx responses before the final one are
// skipped, up to a bound; an upstream that sends them without end fails
// the exchange.
func TestH1InformationalResponses(t *testing.T) {
	for _, tc := range []struct {
		n       int
		wantErr bool
	}{{1, false}, {max1xx, false}, {max1xx + 1, true}} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			defer server.Close()
			go func() {
				if _, err := http.ReadRequest(bufio.NewReader(server)); err != nil {
					return
				}
				io.WriteString(server, strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", tc.n)+
					"HTTP/1.1 204 No Content\r\n\r\n")
			}()
			c := &h1Conn{Conn: client, bw: bufio.NewWriterSize(client, h1WriteBuffer)}
			c.br = bufio.NewReaderSize(h1Reader{c}, h1ReadBuffer)
			p := NewPool(Settings{Name: "app"})
			defer p.Close()
			req, _ := http.NewRequest(http.MethodGet, "http://app/", nil)
			res, err := p.transport.(*h1Transport).exchange(context.Background(), c, req)
			switch {
			case tc.wantErr && err == nil:
				t.Fatalf("%d informational responses: got %d, want an error", tc.n, res.StatusCode)
			case !tc.wantErr && err != nil:
				t.Fatalf("%d informational responses: %v", tc.n, err)
			case !tc.wantErr && res.StatusCode != http.StatusNoContent:
				t.Fatalf("%d informational responses: final status %d, want 204", tc.n, res.StatusCode)
			}
		})
	}
}

// The memory of a recycled response serves the next one, which carries
// none of its fields; recycling a response whose body is still open does
// nothing.
func TestH1RecycledResponses(t *testing.T) {
	addr, _, _ := h1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/empty" {
			w.Header().Set("X-Empty", "1")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("X-Path"+strings.ReplaceAll(r.URL.Path, "/", "-"), "1")
		io.WriteString(w, r.URL.Path)
	}))
	p := NewPool(Settings{Name: "app"})
	defer p.Close()
	for _, path := range []string{"/a", "/empty", "/b", "/c"} {
		res, body := h1Get(t, p.transport, "GET", addr, path, nil)
		var names []string
		for k := range res.Header {
			if strings.HasPrefix(k, "X-") {
				names = append(names, k)
			}
		}
		want := http.CanonicalHeaderKey("X-Path-" + path[1:])
		if path == "/empty" {
			want = "X-Empty"
		}
		if len(names) != 1 || names[0] != want || body != strings.TrimPrefix(path, "/empty") {
			t.Fatalf("%s: fields %q, body %q", path, names, body)
		}
		Recycle(res)
	}

	open, err := p.transport.RoundTrip(mustRequest(t, "http://"+addr+"/open"))
	if err != nil {
		t.Fatal(err)
	}
	Recycle(open) // its body is unread: not recycled
	h1Get(t, p.transport, "GET", addr, "/other", nil)
	b, err := io.ReadAll(open.Body)
	open.Body.Close()
	if err != nil || string(b) != "/open" || open.Header.Get("X-Path-open") != "1" || open.Header.Get("X-Path-other") != "" {
		t.Fatalf("a response recycled with its body open changed: %q %v %v", b, err, open.Header)
	}
}

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// Only the lean HTTP/1.1 transport is done with a request when RoundTrip
// returns: its responses are Released, net/http's (HTTP/2, or the
// HTTP/1.1 fallback for a body of unknown length) are not.
func TestReleased(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	request := func(major int, body io.Reader) *http.Request {
		r, err := http.NewRequest("POST", "http://"+addr+"/", body)
		if err != nil {
			t.Fatal(err)
		}
		r.ProtoMajor = major
		return r
	}
	for _, tc := range []struct {
		name     string
		protocol Protocol
		req      *http.Request
		want     bool
	}{
		{"HTTP/1.1 pool, small body", HTTP1, request(1, strings.NewReader("abc")), true},
		{"HTTP/1.1 pool, no body", HTTP1, request(1, nil), true},
		{"HTTP/1.1 pool, body of unknown length", HTTP1, request(1, io.NopCloser(strings.NewReader("abc"))), false},
		{"downstream's protocol, HTTP/1.1", Downstream, request(1, strings.NewReader("abc")), true},
		{"downstream's protocol, HTTP/2", Downstream, request(2, strings.NewReader("abc")), false},
		{"HTTP/2 pool", HTTP2, request(1, strings.NewReader("abc")), false},
	} {
		p := NewPool(Settings{Name: "app", Protocol: tc.protocol})
		res, err := p.transport.RoundTrip(tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if got := Released(res); got != tc.want {
			t.Errorf("%s: released %v, want %v", tc.name, got, tc.want)
		}
		p.Close()
	}
	if Released(nil) {
		t.Error("no response (an error) is released")
	}
}
