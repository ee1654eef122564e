package h1server

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/proxy/h1wire"
	"golang.org/x/net/http/httpguts"
)

// FuzzParseRequest feeds the request parser arbitrary bytes. It must never
// panic, and a request it accepts must be one net/http's parser reads the
// same way — method, target, version, host, header, framing and body —
// so that this server is never the laxer of the two (the ambiguities
// request smuggling lives on).
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /p?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n3;e=1\r\nabc\r\n0\r\nX: y\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET http://a:1/x HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n",
		"GET / HTTP/1.1\nHost: h\nX: a\n b\n\n",
		"\r\n\r\nCONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\nPragma: no-cache\r\n\r\nx",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 64)
		var scratch []byte
		// As the server reads: into a URL of its own.
		req := &http.Request{URL: new(url.URL)}
		fr, err := parseRequest(br, 4<<10, &scratch, req)
		if err != nil {
			return
		}
		body := readFuzzBody(t, br, fr)

		// net/http's parser, with its server's checks, on the same bytes
		// (without the empty lines this server skips).
		std, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data[h1wire.LeadingEmptyLines(data):])))
		if err != nil {
			t.Fatalf("accepted what net/http refuses (%v): %q", err, data)
		}
		if std.ProtoMajor != 1 {
			t.Fatalf("accepted a version net/http's server refuses: %q", data)
		}
		for k, vv := range std.Header {
			if !httpguts.ValidHeaderFieldName(k) || slices.ContainsFunc(vv, func(v string) bool { return !httpguts.ValidHeaderFieldValue(v) }) {
				t.Fatalf("accepted an invalid field net/http's server refuses: %q", data)
			}
		}
		delete(std.Header, "Host")
		delete(std.Header, "Expect")
		if req.Method != std.Method || req.RequestURI != std.RequestURI || req.Proto != std.Proto || req.Host != std.Host ||
			!reflect.DeepEqual(req.URL, std.URL) || req.Close != std.Close {
			t.Fatalf("request line read differently: %q\n%+v\n%+v", data, req, std)
		}
		if req.ContentLength != std.ContentLength || !slices.Equal(req.TransferEncoding, std.TransferEncoding) {
			t.Fatalf("framing read differently: %q: length %d/%d, encoding %v/%v", data, req.ContentLength, std.ContentLength, req.TransferEncoding, std.TransferEncoding)
		}
		if !equalHeader(req.Header, std.Header) {
			t.Fatalf("header read differently: %q\n%v\n%v", data, req.Header, std.Header)
		}
		stdBody, stdErr := io.ReadAll(std.Body)
		if body != nil && stdErr == nil && !bytes.Equal(body, stdBody) {
			t.Fatalf("body read differently: %q: %q, %q", data, body, stdBody)
		}
	})
}

// readFuzzBody reads the body of a parsed request; nil when it is
// malformed.
func readFuzzBody(t *testing.T, br *bufio.Reader, fr framing) []byte {
	if fr.length == 0 {
		return []byte{}
	}
	c := &conn{br: br, bw: bufio.NewWriter(io.Discard)}
	fr.expectContinue = false
	body := new(body)
	body.reset(c, fr)
	b, err := io.ReadAll(body)
	if err != nil {
		return nil
	}
	if fr.length > 0 && int64(len(b)) != fr.length {
		t.Fatalf("read %d bytes of a %d-byte body", len(b), fr.length)
	}
	return b
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || !slices.Equal(va, vb) && !(k == "Content-Length" && len(va) == 1 && strings.TrimSpace(vb[0]) == va[0]) {
			return false
		}
	}
	return true
}

// FuzzOriginForm: a target originForm reads, url.ParseRequestURI reads to
// the same URL.
func FuzzOriginForm(f *testing.F) {
	for _, s := range []string{"/", "/a/b.c", "/p?q=1&r=%20", "/p?", "/p??", "/a%20b", "/a b", "/é", "/a#f", "//x/y", "/a;b=c:d@e", "*", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		var u url.URL
		if !originForm(target, &u) {
			return
		}
		std, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("%q: read, but url.ParseRequestURI refuses it: %v", target, err)
		}
		if !reflect.DeepEqual(&u, std) {
			t.Fatalf("%q: read as %#v, url.ParseRequestURI reads %#v", target, u, *std)
		}
	})
}
