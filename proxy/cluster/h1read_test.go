package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"testing"
)

// readOurs reads one response to a request of method from raw with
// readResponse and the body as h1Body delimits it.
func readOurs(raw, method string) (*http.Response, string, error, error) {
	br := bufio.NewReaderSize(strings.NewReader(raw), h1ReadBuffer)
	req := &http.Request{Method: method}
	var scratch []byte
	res := new(http.Response)
	kind, err := readResponse(br, req, &scratch, res)
	if err != nil {
		return nil, "", err, nil
	}
	if kind != noBody {
		b := &h1Body{res: res, kind: kind, remaining: res.ContentLength, c: &h1Conn{br: br}, done: false}
		if kind == chunkedBody {
			b.chunks = httputil.NewChunkedReader(br)
		}
		// Read as the transport would, without a pool to hand back to.
		var sb strings.Builder
		var buf [512]byte
		for {
			n, err := b.read(buf[:])
			sb.Write(buf[:n])
			if err == io.EOF {
				return res, sb.String(), nil, nil
			}
			if err != nil {
				return res, sb.String(), nil, err
			}
		}
	}
	return res, "", nil, nil
}

// readTheirs reads the same with http.ReadResponse.
func readTheirs(raw, method string) (*http.Response, string, error, error) {
	br := bufio.NewReaderSize(strings.NewReader(raw), h1ReadBuffer)
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err, nil
	}
	b, err := io.ReadAll(res.Body)
	return res, string(b), nil, err
}

// stricter reports whether err is a refusal readResponse makes on
// purpose where http.ReadResponse reads on (see its doc).
func stricter(err error) bool {
	var e *errUpstream
	return errors.As(err, &e)
}

func compareResponses(t *testing.T, raw, method string) {
	t.Helper()
	ours, ourBody, ourErr, ourBodyErr := readOurs(raw, method)
	theirs, theirBody, theirErr, theirBodyErr := readTheirs(raw, method)
	switch {
	case ourErr != nil && theirErr != nil:
		return
	case ourErr != nil:
		if !stricter(ourErr) {
			t.Fatalf("%q: readResponse failed (%v) where ReadResponse read %d", raw, ourErr, theirs.StatusCode)
		}
		return
	case theirErr != nil:
		t.Fatalf("%q: readResponse read %d where ReadResponse failed: %v", raw, ours.StatusCode, theirErr)
	}
	if ours.StatusCode != theirs.StatusCode || ours.Status != theirs.Status || ours.Proto != theirs.Proto ||
		ours.ProtoMajor != theirs.ProtoMajor || ours.ProtoMinor != theirs.ProtoMinor {
		t.Fatalf("%q: status %q %d %s, ReadResponse's %q %d %s", raw, ours.Status, ours.StatusCode, ours.Proto, theirs.Status, theirs.StatusCode, theirs.Proto)
	}
	if ours.ContentLength != theirs.ContentLength || ours.Close != theirs.Close || !slices.Equal(ours.TransferEncoding, theirs.TransferEncoding) {
		t.Fatalf("%q: length %d close %v TE %q, ReadResponse's %d %v %q", raw,
			ours.ContentLength, ours.Close, ours.TransferEncoding, theirs.ContentLength, theirs.Close, theirs.TransferEncoding)
	}
	if !maps.EqualFunc(ours.Header, theirs.Header, slices.Equal) {
		t.Fatalf("%q: header %q, ReadResponse's %q", raw, ours.Header, theirs.Header)
	}
	if (ourBodyErr == nil) != (theirBodyErr == nil) {
		if !stricter(ourBodyErr) {
			t.Fatalf("%q: body error %v, ReadResponse's %v", raw, ourBodyErr, theirBodyErr)
		}
		return
	}
	if ourBody != theirBody {
		t.Fatalf("%q: body %q, ReadResponse's %q", raw, ourBody, theirBody)
	}
	if ourBodyErr == nil && !maps.EqualFunc(ours.Trailer, theirs.Trailer, slices.Equal) {
		t.Fatalf("%q: trailer %q, ReadResponse's %q", raw, ours.Trailer, theirs.Trailer)
	}
}

var responseCases = []struct {
	name, raw, method string
	stricter          bool // readResponse refuses what ReadResponse reads
}{
	{name: "content-length", raw: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"},
	{name: "no reason", raw: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"},
	{name: "odd reason", raw: "HTTP/1.1 299  Very  Fine \r\nContent-Length: 1\r\n\r\nx"},
	{name: "chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"},
	{name: "chunked with trailers", raw: "HTTP/1.1 200 OK\r\nTrailer: Grpc-Status, X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nX-Sum: 1\r\nX-Extra: 2\r\n\r\n"},
	{name: "chunked trailer declared not sent", raw: "HTTP/1.1 200 OK\r\nTrailer: X-Late\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{name: "chunked upper case", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n1\r\na\r\n0\r\n\r\n"},
	{name: "chunk extension", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=1\r\na\r\n0\r\n\r\n"},
	{name: "until close", raw: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"},
	{name: "http/1.0 keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"},
	{name: "http/1.0 close", raw: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	{name: "http/1.0 ignores TE", raw: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nraw"},
	{name: "connection close removed", raw: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"},
	{name: "head with length", method: "HEAD", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"},
	{name: "head without length", method: "HEAD", raw: "HTTP/1.1 200 OK\r\n\r\n"},
	{name: "head chunked", method: "HEAD", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
	{name: "204", raw: "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"},
	{name: "304", raw: "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"},
	{name: "100 continue", raw: "HTTP/1.1 100 Continue\r\n\r\n"},
	{name: "duplicate equal lengths", raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"},
	{name: "pragma", raw: "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n"},
	{name: "LF line ends", raw: "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"},
	{name: "repeated fields", raw: "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n"},
	{name: "short body", raw: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"},
	{name: "truncated chunk", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"},
	{name: "differing lengths", raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"},
	{name: "bad length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nx"},
	{name: "gzip transfer encoding", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"},
	{name: "bad trailer key", raw: "HTTP/1.1 200 OK\r\nTrailer: Content-Length\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{name: "no status code", raw: "HTTP/1.1 OK\r\n\r\n"},
	{name: "empty", raw: ""},
	{name: "truncated head", raw: "HTTP/1.1 200 OK\r\nContent-Len"},
	{name: "obs-fold", raw: "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", stricter: true},
	{name: "space before colon", raw: "HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 0\r\n\r\n", stricter: true},
	{name: "length and chunked", raw: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", stricter: true},
	{name: "http/2.0 status line", raw: "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", stricter: true},
	{name: "status below 100", raw: "HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n", stricter: true},
	{name: "NUL in value", raw: "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n", stricter: true},
}

// TestReadResponseAsNetHTTP reads responses with readResponse and with
// http.ReadResponse: the same status, header, framing, body and trailers,
// or, where readResponse is stricter on purpose, a refusal of its own.
func TestReadResponseAsNetHTTP(t *testing.T) {
	for _, tc := range responseCases {
		t.Run(tc.name, func(t *testing.T) {
			method := cmpOr(tc.method, http.MethodGet)
			compareResponses(t, tc.raw, method)
			if tc.stricter {
				if _, _, err, _ := readOurs(tc.raw, method); !stricter(err) {
					t.Errorf("readResponse read %q; want a refusal", tc.raw)
				}
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestReadResponseLongHead: a head larger than the read buffer is read
// whole; one over maxResponseHead is refused.
func TestReadResponseLongHead(t *testing.T) {
	long := strings.Repeat("x", 3*h1ReadBuffer)
	compareResponses(t, "HTTP/1.1 200 OK\r\nX-Long: "+long+"\r\nContent-Length: 2\r\n\r\nok", http.MethodGet)
	huge := strings.Repeat("x", maxResponseHead)
	if _, _, err, _ := readOurs("HTTP/1.1 200 OK\r\nX-Huge: "+huge+"\r\n\r\n", http.MethodGet); !stricter(err) {
		t.Errorf("a head over %d bytes: err %v, want a refusal", maxResponseHead, err)
	}
}

// TestReadResponseKeepsTheNext: a response read to its end leaves the
// next one in the buffer, whatever its framing.
func TestReadResponseKeepsTheNext(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast"
	br := bufio.NewReaderSize(strings.NewReader(raw), h1ReadBuffer)
	var scratch []byte
	var got []string
	for range 4 {
		res := new(http.Response)
		kind, err := readResponse(br, &http.Request{Method: http.MethodGet}, &scratch, res)
		if err != nil {
			t.Fatal(err)
		}
		body := ""
		if kind != noBody {
			b := &h1Body{res: res, kind: kind, remaining: res.ContentLength, c: &h1Conn{br: br}}
			if kind == chunkedBody {
				b.chunks = httputil.NewChunkedReader(br)
			}
			all, err := io.ReadAll(readerFunc(b.read))
			if err != nil {
				t.Fatal(err)
			}
			body = string(all)
		}
		got = append(got, fmt.Sprintf("%d %s %v", res.StatusCode, body, res.Trailer))
	}
	want := []string{"200 ok map[]", "200 hi map[X-T:[1]]", "204  map[]", "200 last map[]"}
	if !slices.Equal(got, want) {
		t.Errorf("read %q, want %q", got, want)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func BenchmarkReadResponse(b *testing.B) {
	raw := "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nDate: Sat, 21 Nov 2026 21:00:00 GMT\r\nX-Request-Id: 7f6c1c0e-3b8f-4d4e-9d55-0f1d7c0a9b1e\r\nContent-Length: 0\r\n\r\n"
	r := strings.NewReader(raw)
	br := bufio.NewReaderSize(r, h1ReadBuffer)
	req := &http.Request{Method: http.MethodGet}
	var scratch []byte
	b.Run("readResponse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(raw)
			br.Reset(r)
			if _, err := readResponse(br, req, &scratch, new(http.Response)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("readResponse/recycled", func(b *testing.B) {
		// As h1Transport reads: into a response whose memory is reused.
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(raw)
			br.Reset(r)
			res := h1Responses.Get().(*h1Response)
			if _, err := res.read(br, req, &scratch); err != nil {
				b.Fatal(err)
			}
			res.recycle()
		}
	})
	b.Run("http.ReadResponse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(raw)
			br.Reset(r)
			if _, err := http.ReadResponse(br, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzReadResponse: on any bytes, readResponse reads what
// http.ReadResponse reads, or refuses on purpose (see its doc).
func FuzzReadResponse(f *testing.F) {
	for _, tc := range responseCases {
		f.Add(tc.raw, tc.method == http.MethodHead)
	}
	f.Fuzz(func(t *testing.T, raw string, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		compareResponses(t, raw, method)
	})
}
