package h1server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkServe measures the server's path — parse a request, run the
// handler, write the response — on a kept-alive loopback connection, for
// this server and net/http's, with a handler shaped like the proxy's: it
// copies the request body into a response with a Content-Length. The
// client allocates nothing, so allocs/op are the server's.
//
//	go test -run '^$' -bench BenchmarkServe -benchmem -cpu 1 ./proxy/h1server
func BenchmarkServe(b *testing.B) {
	payload := bytes.Repeat([]byte("p"), 1024)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 0, 2048)
		if r.ContentLength > 0 {
			buf = buf[:r.ContentLength]
			if _, err := io.ReadFull(r.Body, buf); err != nil {
				b.Error(err)
			}
		}
		h := w.Header()
		h["Content-Type"] = textPlain
		h["Content-Length"] = []string{strconv.Itoa(len(buf))}
		w.WriteHeader(http.StatusOK)
		w.Write(buf)
	})
	requests := map[string][]byte{
		"get":       []byte("GET /echo?x=1 HTTP/1.1\r\nHost: echo.default.svc:8080\r\nUser-Agent: fortio.org/fortio-1.68.2\r\nAccept: */*\r\nX-Request-Id: 6c4ab3e2-0d3c-4b36-9a1a-3d5b9a1e2f10\r\n\r\n"),
		"post-1KiB": append([]byte("POST /echo HTTP/1.1\r\nHost: echo.default.svc:8080\r\nUser-Agent: fortio.org/fortio-1.68.2\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n"), payload...),
	}
	for _, name := range []string{"get", "post-1KiB"} {
		req := requests[name]
		b.Run("server=h1server/"+name, func(b *testing.B) {
			benchServe(b, serveLean(b, &Server{Handler: handler}), req)
		})
		b.Run("server=net-http/"+name, func(b *testing.B) {
			benchServe(b, serveNetHTTP(b, handler), req)
		})
	}
}

var textPlain = []string{"text/plain"}

func benchServe(b *testing.B, addr string, req []byte) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 8<<10)
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n, err := readResponse(br)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := br.Discard(n); err != nil {
			b.Fatal(err)
		}
	}
	roundTrip() // warm the pools
	b.ReportAllocs()
	for b.Loop() {
		roundTrip()
	}
}

// readResponse reads a response head without allocating and returns its
// Content-Length.
func readResponse(br *bufio.Reader) (int, error) {
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			return n, nil
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			for _, d := range bytes.TrimSpace(v) {
				n = n*10 + int(d-'0')
			}
		}
	}
}
