package h1server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// describe answers with what the server made of the request, for
// comparing two servers. The Expect field is left out: this server
// answers it and drops it, net/http passes it on.
func describe(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	var sb strings.Builder
	fmt.Fprintf(&sb, "method=%s uri=%s path=%s query=%s proto=%s host=%s cl=%d te=%v close=%v remote=%v\n",
		r.Method, r.RequestURI, r.URL.Path, r.URL.RawQuery, r.Proto, r.Host, r.ContentLength, r.TransferEncoding, r.Close, r.RemoteAddr != "")
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		if k != "Expect" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s=%q\n", k, r.Header[k])
	}
	fmt.Fprintf(&sb, "body=%q err=%v\n", b, err)
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, sb.String())
}

// serveLean serves h with a Server on a loopback socket until the test
// ends.
func serveLean(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.ServeConn(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		s.Close()
	})
	return ln.Addr().String()
}

// serveNetHTTP serves h with net/http's server until the test ends.
func serveNetHTTP(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h, ErrorLog: nil}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return ln.Addr().String()
}

// exchange sends raw and reads one response.
func exchange(t testing.TB, addr, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	for err == nil && res.StatusCode == http.StatusContinue {
		res, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		t.Fatalf("reading the response to %q: %v", raw, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

// TestCompareWithNetHTTP sends the same requests to this server and to
// net/http's, and expects the same reading of each, except where this
// server is stricter on purpose (want).
func TestCompareWithNetHTTP(t *testing.T) {
	lean := serveLean(t, &Server{Handler: http.HandlerFunc(describe)})
	std := serveNetHTTP(t, http.HandlerFunc(describe))
	tests := []struct {
		name, raw string
		// want, when set, is this server's status where net/http differs
		// (stdWant).
		want, stdWant int
	}{
		{name: "get", raw: "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n"},
		{name: "escaped path", raw: "GET /a%2Fb/%7Ec HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "lower-case names", raw: "GET / HTTP/1.1\r\nhost: h\r\nx-request-id: 1\r\ncontent-type: a/b\r\nx_under: u\r\n\r\n"},
		{name: "repeated field", raw: "GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAccept: b\r\nCookie: c=1\r\n\r\n"},
		{name: "trimmed value", raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A: \t v w \t\r\nX-Empty:\r\n\r\n"},
		{name: "obs-text value", raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A: caf\xc3\xa9\r\n\r\n"},
		{name: "content-length body", raw: "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "zero content-length", raw: "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"},
		{name: "duplicate equal content-length", raw: "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
		{name: "chunked body", raw: "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"},
		{name: "chunked body with trailer", raw: "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nX-T: v\r\n\r\n"},
		{name: "http/1.0", raw: "GET / HTTP/1.0\r\n\r\n"},
		{name: "http/1.0 keep-alive", raw: "GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: h\r\n\r\n"},
		{name: "connection close", raw: "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"},
		{name: "absolute form", raw: "GET http://a.example:8080/x?q HTTP/1.1\r\nHost: other\r\n\r\n"},
		{name: "bare LF", raw: "GET / HTTP/1.1\nHost: h\nX-A: 1\n\n"},
		{name: "pragma no-cache", raw: "GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n"},
		{name: "expect 100-continue", raw: "PUT /p HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"},
		{name: "extension method", raw: "PURGE /x HTTP/1.1\r\nHost: h\r\n\r\n"},

		{name: "differing content-length", raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{name: "invalid content-length", raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3a\r\n\r\nabc"},
		{name: "signed content-length", raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc"},
		{name: "empty content-length", raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n"},
		{name: "unsupported transfer-encoding", raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
		{name: "two transfer-encodings", raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "missing host", raw: "GET / HTTP/1.1\r\n\r\n"},
		{name: "two hosts", raw: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{name: "bad host", raw: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{name: "space before colon", raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n"},
		{name: "no colon", raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A\r\n\r\n"},
		{name: "NUL in value", raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n"},
		{name: "CR in value", raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n"},
		{name: "invalid method", raw: "G(T / HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "space in target", raw: "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "no version", raw: "GET /\r\nHost: h\r\n\r\n"},
		{name: "http/2.0 request line", raw: "GET / HTTP/2.0\r\nHost: h\r\n\r\n"},
		{name: "relative target", raw: "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "unsupported expectation", raw: "GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n"},

		// Stricter than net/http, on purpose.
		{name: "content-length and transfer-encoding", raw: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", want: 400, stdWant: 200},
		{name: "transfer-encoding on http/1.0", raw: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", want: 400, stdWant: 200},
		{name: "obs-fold", raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n", want: 400, stdWant: 200},
		{name: "http/1.2", raw: "GET / HTTP/1.2\r\nHost: h\r\n\r\n", want: 505, stdWant: 200},
		// More lenient: RFC 9112 §2.2 asks servers to skip empty lines before
		// a request; net/http does only after a POST.
		// net/http answers "OPTIONS *" itself; here the handler does.
		{name: "asterisk form", raw: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", want: 200, stdWant: 200},
		{name: "leading empty line", raw: "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", want: 200, stdWant: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := exchange(t, lean, tt.raw)
			stdRes, stdBody := exchange(t, std, tt.raw)
			if tt.want != 0 {
				if res.StatusCode != tt.want || stdRes.StatusCode != tt.stdWant {
					t.Fatalf("status %d (net/http %d), want %d (net/http %d)\n%s", res.StatusCode, stdRes.StatusCode, tt.want, tt.stdWant, body)
				}
				return
			}
			if res.StatusCode != stdRes.StatusCode {
				t.Fatalf("status %d, net/http's %d\n%s\nnet/http: %s", res.StatusCode, stdRes.StatusCode, body, stdBody)
			}
			if res.StatusCode == http.StatusOK && body != stdBody {
				t.Fatalf("request read as\n%s\nnet/http read it as\n%s", body, stdBody)
			}
			if res.StatusCode != http.StatusOK && !res.Close {
				t.Errorf("a refusal should close the connection: %v", res.Header)
			}
		})
	}
}

// TestResponsesLikeNetHTTP compares the framing of responses: length,
// chunking, HEAD, statuses without a body, HTTP/1.0.
func TestResponsesLikeNetHTTP(t *testing.T) {
	big := strings.Repeat("x", 3*pendingMax)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// net/http sniffs a missing Content-Type; this server, a proxy's,
		// does not (TestNoContentTypeSniffing).
		w.Header().Set("Content-Type", "text/plain")
		switch r.URL.Path {
		case "/small":
			io.WriteString(w, "small")
		case "/big":
			io.WriteString(w, big)
		case "/declared":
			w.Header().Set("Content-Length", "4")
			io.WriteString(w, "four")
		case "/flushed":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		case "/empty":
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Etag", `"x"`)
			w.WriteHeader(http.StatusNotModified)
		case "/trailers":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		case "/undeclared-trailer":
			io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}
	})
	lean := serveLean(t, &Server{Handler: handler})
	std := serveNetHTTP(t, handler)
	for _, path := range []string{"/small", "/big", "/declared", "/flushed", "/empty", "/204", "/304", "/trailers", "/undeclared-trailer", "/close"} {
		for _, req := range []string{
			"GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n",
			"HEAD " + path + " HTTP/1.1\r\nHost: h\r\n\r\n",
			"GET " + path + " HTTP/1.0\r\n\r\n",
			"GET " + path + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		} {
			t.Run(strings.Fields(req)[0]+" "+path+" "+strings.Fields(req)[2], func(t *testing.T) {
				got := responseShape(t, lean, req)
				want := responseShape(t, std, req)
				if got != want {
					t.Errorf("response\n%s\nnet/http's\n%s", got, want)
				}
			})
		}
	}
}

// responseShape describes a response's status, framing and trailers.
func responseShape(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, raw)
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	h := res.Header.Clone()
	h.Del("Date")
	return fmt.Sprintf("%s cl=%d te=%v close=%v header=%v body=%d trailer=%v", res.Status, res.ContentLength, res.TransferEncoding, res.Close, h, len(b), res.Trailer)
}
