package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// writeBoth writes req with writeRequest and with Request.Write (from a
// fresh copy, as each closes the body) and returns both outputs and errors.
func writeBoth(t testing.TB, mk func() *http.Request) (ours, theirs []byte, ourErr, theirErr error) {
	t.Helper()
	var a, b bytes.Buffer
	bw := bufio.NewWriter(&a)
	var lr io.LimitedReader
	ourErr = writeRequest(bw, mk(), &lr)
	bw.Flush()
	theirErr = mk().Write(&b)
	return a.Bytes(), b.Bytes(), ourErr, theirErr
}

func newReq(method, target, host string, h http.Header, body string, n int64) func() *http.Request {
	return func() *http.Request {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			panic(err)
		}
		req := &http.Request{Method: method, URL: u, Host: host, Header: h.Clone(), ContentLength: n, Body: http.NoBody}
		if body != "" || n > 0 {
			req.Body = io.NopCloser(strings.NewReader(body))
		}
		return req
	}
}

// TestWriteRequestAsNetHTTP checks writeRequest against Request.Write on
// the requests h1Transport sends: the bytes must be the same.
func TestWriteRequestAsNetHTTP(t *testing.T) {
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = append(out[kv[i]], kv[i+1])
		}
		return out
	}
	noUA := http.Header{"User-Agent": nil}
	cases := []struct {
		name string
		mk   func() *http.Request
	}{
		{"GET, no User-Agent key", newReq("GET", "/", "payments", nil, "", 0)},
		{"GET, User-Agent nil", newReq("GET", "/a/b?x=1&y=2", "payments:8080", noUA, "", 0)},
		{"empty method", newReq("", "/", "h", noUA, "", 0)},
		{"HEAD", newReq("HEAD", "/", "h", noUA, "", 0)},
		{"DELETE without body", newReq("DELETE", "/item/1", "h", noUA, "", 0)},
		{"POST without body", newReq("POST", "/", "h", noUA, "", 0)},
		{"POST with body", newReq("POST", "/submit", "h", h("Content-Type", "application/json", "User-Agent", "curl/8"), `{"a":1}`, 7)},
		{"headers sorted, repeated, excluded", newReq("PUT", "/", "h", h(
			"X-B", "2", "X-A", "1", "X-A", "1b", "Host", "ignored", "Content-Length", "99", "Transfer-Encoding", "chunked", "Trailer", "X", "Accept", "*/*"), "abc", 3)},
		{"values cleaned", newReq("GET", "/", "h", h("X-Nl", "a\r\nb", "X-Pad", " \tv\t ", "User-Agent", "  ua \n"), "", 0)},
		{"invalid field name dropped", newReq("GET", "/", "h", h("Bad Name", "v", "Ok", "v"), "", 0)},
		{"Connection close", newReq("GET", "/", "h", h("Connection", "keep-alive, CLOSE"), "", 0)},
		{"escaped path", newReq("GET", "/a%20b/c%2Fd", "h", noUA, "", 0)},
		{"force query", newReq("GET", "/p?", "h", noUA, "", 0)},
		{"empty User-Agent value", newReq("GET", "/", "h", h("User-Agent", ""), "", 0)},
		{"blank User-Agent value", newReq("GET", "/", "h", h("User-Agent", "   "), "", 0)},
		{"IPv6 zone removed", newReq("GET", "/", "[fe80::1%25eth0]:80", noUA, "", 0)},
		{"invalid Host sent empty", newReq("GET", "/", "bad host\r\n", noUA, "", 0)},
		{"IDN host", newReq("GET", "/", "bücher.example:80", noUA, "", 0)},
		{"body shorter than Content-Length", newReq("POST", "/", "h", noUA, "ab", 5)},
		{"body longer than Content-Length", newReq("POST", "/", "h", noUA, "abcdef", 3)},
		{"Content-Length without body", func() *http.Request {
			r := newReq("POST", "/", "h", noUA, "", 0)()
			r.Body, r.ContentLength = nil, 4
			return r
		}},
		{"close requested", func() *http.Request {
			r := newReq("GET", "/", "h", noUA, "", 0)()
			r.Close = true
			return r
		}},
		{"control character in path", func() *http.Request {
			r := newReq("GET", "/", "h", noUA, "", 0)()
			r.URL.Path = "/a\x01b"
			return r
		}},
		{"opaque URL", func() *http.Request {
			r := newReq("GET", "/", "h", noUA, "", 0)()
			r.URL = &url.URL{Scheme: "http", Opaque: "//h/x"}
			return r
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ours, theirs, ourErr, theirErr := writeBoth(t, tc.mk)
			if (ourErr == nil) != (theirErr == nil) || (ourErr != nil && ourErr.Error() != theirErr.Error()) {
				t.Fatalf("error %v, Request.Write's %v", ourErr, theirErr)
			}
			if ourErr == nil && !bytes.Equal(ours, theirs) {
				t.Errorf("wrote\n%q\nRequest.Write wrote\n%q", ours, theirs)
			}
		})
	}
}

// TestWriteRequestClosesBody: as Request.Write, the body is closed, also
// on failure.
func TestWriteRequestClosesBody(t *testing.T) {
	for _, body := range []string{"abc", "ab"} {
		b := &closeCounter{Reader: strings.NewReader(body)}
		req := newReq("POST", "/", "h", nil, "", 0)()
		req.Body, req.ContentLength = b, 3
		var lr io.LimitedReader
		_ = writeRequest(bufio.NewWriter(io.Discard), req, &lr)
		if b.closed != 1 {
			t.Errorf("body %q closed %d times, want once", body, b.closed)
		}
	}
}

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func BenchmarkWriteRequest(b *testing.B) {
	mk := newReq("GET", "/api/v1/items?id=42", "payments.default:8080", http.Header{
		"User-Agent": {"fortio.org/fortio-1.68.2"}, "Accept": {"*/*"}, "X-Request-Id": {"7f6c1c0e-3b8f-4d4e-9d55-0f1d7c0a9b1e"},
		"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}, "", 0)
	req := mk()
	bw := bufio.NewWriterSize(io.Discard, h1WriteBuffer)
	var lr io.LimitedReader
	b.Run("writeRequest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = writeRequest(bw, req, &lr)
		}
	})
	b.Run("Request.Write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = req.Write(bw)
		}
	})
	payload := strings.Repeat("x", 1024)
	body := strings.NewReader(payload)
	post := newReq("POST", "/echo", "echo.default:8080", http.Header{"User-Agent": nil}, "", 0)()
	post.Body, post.ContentLength = io.NopCloser(body), int64(len(payload))
	b.Run("writeRequest POST 1KiB", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			body.Reset(payload)
			_ = writeRequest(bw, post, &lr)
		}
	})
}

// FuzzWriteRequest: for any request h1Transport would send itself,
// writeRequest writes what Request.Write writes, or fails as it fails.
func FuzzWriteRequest(f *testing.F) {
	f.Add("GET", "/a?b=c", "payments:80", "X-A", "v", "User-Agent", "ua", "", false)
	f.Add("POST", "/", "h", "Connection", "close", "X-B", "a\r\nb", "body", true)
	f.Add("", "/%zz", "[::1%eth0]:1", "Bad Name", "x", "Trailer", "y", "", false)
	f.Fuzz(func(t *testing.T, method, target, host, k1, v1, k2, v2, body string, closeReq bool) {
		u, err := url.ParseRequestURI(target)
		if err != nil || method == http.MethodConnect {
			return
		}
		h := http.Header{}
		if k1 != "" {
			h[k1] = append(h[k1], v1)
		}
		if k2 != "" {
			h[k2] = append(h[k2], v2)
		}
		if _, ok := h["Expect"]; ok {
			return
		}
		mk := func() *http.Request {
			r := &http.Request{Method: method, URL: &url.URL{}, Host: host, Header: h.Clone(), Close: closeReq, Body: http.NoBody}
			*r.URL = *u
			if body != "" {
				r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
			}
			return r
		}
		ours, theirs, ourErr, theirErr := writeBoth(t, mk)
		if (ourErr == nil) != (theirErr == nil) {
			t.Fatalf("error %v, Request.Write's %v", ourErr, theirErr)
		}
		if ourErr != nil {
			if ourErr.Error() != theirErr.Error() && !errors.Is(ourErr, theirErr) {
				t.Fatalf("error %q, Request.Write's %q", ourErr, theirErr)
			}
			return
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("wrote\n%q\nRequest.Write wrote\n%q", ours, theirs)
		}
	})
}
