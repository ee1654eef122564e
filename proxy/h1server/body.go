package h1server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/proxy/h1wire"
	"golang.org/x/net/http/httpguts"
)

// Bounds of what the server reads on its own behalf.
const (
	// maxDrain is the unread request body the server reads past to keep a
	// connection: more, and it closes the connection instead (net/http's
	// bound too).
	maxDrain = 256 << 10
	// maxTrailerBytes bounds the trailer section of a chunked request.
	maxTrailerBytes = 64 << 10
)

// body is a request body read from the connection's buffered reader: a
// Content-Length or chunked one. It is reused for the connection's next
// request only when the handler released its request (ReleaseRequest):
// otherwise an upstream transport may still hold it after the handler
// returned, and must then read ErrBodyReadAfterClose, never the next
// request's bytes.
type body struct {
	c *conn

	mu        sync.Mutex
	remaining int64     // bytes left of a Content-Length body
	chunks    io.Reader // the chunked decoder; nil for a Content-Length body
	// expect says "100 Continue" is to be sent before the first read.
	expect bool
	eof    bool  // read to its end: the next request follows
	closed bool  // closed by the handler, or the request is over
	err    error // a failed read: the connection cannot be reused
}

// reset readies b for a request's body framed as f.
func (b *body) reset(c *conn, f framing) {
	*b = body{c: c, remaining: f.length, expect: f.expectContinue}
	if f.chunked {
		b.chunks = httputil.NewChunkedReader(c.br)
	}
}

// buffered reports whether the whole of a Content-Length body is in the
// connection's reader already, so that reading it never waits on the
// client.
func (b *body) buffered() bool {
	return b.chunks == nil && !b.expect && int64(b.c.br.Buffered()) >= b.remaining
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

func (b *body) readLocked(p []byte) (int, error) {
	switch {
	case b.err != nil:
		return 0, b.err
	case b.eof:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	}
	if b.expect {
		b.expect = false
		if err := b.c.writeContinue(); err != nil {
			return 0, b.fail(err)
		}
	}
	if b.chunks != nil {
		n, err := b.chunks.Read(p)
		if err == io.EOF {
			if err := readTrailer(b.c.br); err != nil {
				return n, b.fail(err)
			}
			b.eof = true
			return n, io.EOF
		}
		if err != nil {
			return n, b.fail(err)
		}
		return n, nil
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.c.br.Read(p)
	b.remaining -= int64(n)
	if b.remaining == 0 {
		b.eof = true
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, b.fail(err)
	}
	return n, nil
}

func (b *body) fail(err error) error {
	b.err = err
	return err
}

// Close makes further reads fail; what is left unread is the server's to
// drain or not (finish).
func (b *body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// finish ends the body for good when its request is answered. It reads
// past what the handler left unread, up to maxDrain, and reports whether
// the connection is positioned at the next request. A body whose client
// still waits for "100 Continue" is not drained: the client may never send
// it.
func (b *body) finish() (reusable bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.eof {
		return true
	}
	if b.err != nil || b.expect {
		return false
	}
	// A client that stalls cannot hold the connection's goroutine here
	// for longer than it may take to send a request head.
	if d := b.c.srv.ReadHeaderTimeout; d > 0 {
		_ = b.c.rwc.SetReadDeadline(time.Now().Add(d))
	}
	var buf [4 << 10]byte
	for drained := 0; drained <= maxDrain; {
		n, err := b.readLocked(buf[:])
		drained += n
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

var errTrailerTooLarge = errors.New("request trailer section too large")

// readTrailer reads a chunked body's trailer section and its final empty
// line. Its fields are checked and dropped: the hcm forwards no request
// trailers.
func readTrailer(br *bufio.Reader) error {
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return errTrailerTooLarge
		}
		if err != nil {
			return unexpectedEOFErr(err)
		}
		if total += len(line); total > maxTrailerBytes {
			return errTrailerTooLarge
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, crlf[1:]), crlf[:1])
		if len(line) == 0 {
			return nil
		}
		name, value, ok := strings.Cut(string(line), ":")
		if !ok || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(h1wire.TrimOWS(value)) {
			return errors.New("malformed request trailer")
		}
	}
}

func unexpectedEOFErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
