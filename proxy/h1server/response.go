package h1server

import (
	"bufio"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/proxy/h1wire"
	"golang.org/x/net/http/httpguts"
)

var crlf = []byte("\r\n")

// pendingMax is how much body the writer holds back, before the head
// leaves, while the length is unknown: a handler that is done by then gets
// a Content-Length rather than chunked encoding, as with net/http (which
// holds 2 KiB).
const pendingMax = 4 << 10

// response is the http.ResponseWriter of a connection's current request.
// It is the connection's, reused for each request: the handler may not use
// it once ServeHTTP has returned (the http.ResponseWriter contract).
//
// WriteHeader writes the status line and the handler's fields into the
// connection's buffered writer at once, which snapshots them: fields set
// afterwards (trailers) do not leak into the head. The framing fields —
// Content-Length or Transfer-Encoding, Connection — follow when the head is
// committed: at the first write past pendingMax, at Flush, or when the
// handler returns, when the length is known.
type response struct {
	c   *conn
	req *http.Request
	// body is the request's body, nil without one.
	body   *body
	header http.Header

	status      int
	wroteHeader bool // the final status line is in the writer
	committed   bool // the framing fields and the end of the head too
	// length is the declared Content-Length, or -1.
	length   int64
	written  int64
	chunking bool
	// closeAfter says the connection ends after this response.
	closeAfter bool
	// handlerClose: the handler's header says "Connection: close".
	handlerClose bool
	// noBody: a HEAD request, or a status without a body.
	noBody bool
	head   bool
	// connection is the handler's Connection field other than "close"
	// ("Upgrade" on a 101), written at commit.
	connection string
	trailers   []string
	keys       []string // the header's keys, sorted
	pending    []byte
	hijacked   bool
	// released: the handler keeps nothing of the request (ReleaseRequest).
	released bool
	scratch  [32]byte
}

func (w *response) reset(req *http.Request, b *body) {
	clear(w.header)
	*w = response{c: w.c, req: req, body: b, header: w.header, length: -1,
		head: req.Method == http.MethodHead, trailers: w.trailers[:0], keys: w.keys[:0], pending: w.pending[:0]}
	w.closeAfter = req.Close
}

func (w *response) Header() http.Header { return w.header }

// ReleaseRequest tells the server that the handler keeps nothing of the
// request once ServeHTTP has returned: not the *http.Request, nor its
// Header map, URL or Body. The server then reads the connection's next
// request into the same memory. A handler calls it during ServeHTTP, and only when it
// can promise that; net/http's servers have no such method.
func (w *response) ReleaseRequest() { w.released = true }

// WriteHeader writes the status line and the header fields the handler
// set, except the framing ones, which commit writes.
func (w *response) WriteHeader(code int) {
	switch {
	case w.hijacked:
		w.c.srv.logf("h1server: WriteHeader on a hijacked connection", "remote", w.c.remote)
		return
	case w.wroteHeader:
		return
	case code < 100 || code > 999:
		panic("h1server: invalid WriteHeader code " + strconv.Itoa(code))
	case code < 200 && code != http.StatusSwitchingProtocols:
		w.writeInterim(code)
		return
	}
	w.c.startResponse()
	w.wroteHeader = true
	w.status = code
	w.noBody = w.head || !bodyAllowed(code)
	bw := w.c.bw
	writeStatusLine(bw, w.req.ProtoMinor, code, w.scratch[:0])
	if !w.writeFields(bw) {
		bw.WriteString("Date: ")
		bw.Write(appendDate(w.scratch[:0]))
		bw.Write(crlf)
	}
	// A HEAD response waits for the handler: the length of what it wrote
	// is the Content-Length to announce.
	if w.length >= 0 || w.noBody && !w.head {
		w.commit(false)
	}
}

// writeFields writes the handler's header fields, sorted as net/http
// sends them, and takes note of those that frame the body, which commit
// writes. It reports whether the handler set a Date.
func (w *response) writeFields(bw *bufio.Writer) (hasDate bool) {
	keys := w.keys[:0]
	for k := range w.header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.keys = keys
	for _, k := range keys {
		vv := w.header[k]
		switch k {
		case "Content-Length":
			if len(vv) == 1 {
				if n, err := strconv.ParseInt(h1wire.TrimOWS(vv[0]), 10, 64); err == nil && n >= 0 {
					w.length = n
				}
			}
			continue
		case "Transfer-Encoding":
			// The server frames the body itself.
			continue
		case "Connection":
			if httpguts.HeaderValuesContainsToken(vv, "close") {
				w.closeAfter, w.handlerClose = true, true
			} else if len(vv) > 0 {
				w.connection = vv[0]
			}
			continue
		case "Trailer":
			w.declareTrailers(vv)
		case "Date":
			hasDate = true
		case "Content-Type":
			if w.status == http.StatusNotModified {
				continue
			}
		}
		if !strings.HasPrefix(k, http.TrailerPrefix) {
			writeField(bw, k, vv)
		}
	}
	return hasDate
}

// writeInterim sends a 1xx response at once.
func (w *response) writeInterim(code int) {
	// A body read may be sending "100 Continue" on another goroutine.
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	if w.c.started {
		return
	}
	bw := w.c.bw
	writeStatusLine(bw, w.req.ProtoMinor, code, w.scratch[:0])
	for k, vv := range w.header {
		writeField(bw, k, vv)
	}
	bw.Write(crlf)
	_ = bw.Flush()
}

func (w *response) declareTrailers(vv []string) {
	for _, v := range vv {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(t))
			}
		}
	}
}

// commit completes the head: framing fields and the empty line, then the
// body held back. done says the handler has returned, so that the length
// of what it wrote is the body's.
func (w *response) commit(done bool) {
	w.committed = true
	bw := w.c.bw
	switch {
	case w.noBody:
		if w.length >= 0 && w.head {
			writeContentLength(bw, w.length, w.scratch[:0])
		} else if done && w.head && w.written > 0 && w.written <= pendingMax && len(w.trailers) == 0 {
			writeContentLength(bw, w.written, w.scratch[:0])
		}
	case w.length >= 0:
		writeContentLength(bw, w.length, w.scratch[:0])
	case done && len(w.trailers) == 0 && !w.hasUndeclaredTrailers():
		w.length = int64(len(w.pending))
		writeContentLength(bw, w.length, w.scratch[:0])
	case w.req.ProtoMinor == 1:
		w.chunking = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	default:
		// HTTP/1.0 without a length: the end of the connection ends the body.
		w.closeAfter = true
	}
	// A body left unread is read past now, before the response: a client
	// that sends its whole request before reading could otherwise block.
	if !w.closeAfter && w.body != nil && !w.body.finish() {
		w.closeAfter = true
	}
	if w.c.srv.shuttingDown() {
		w.closeAfter = true
	}
	switch {
	case w.status == http.StatusSwitchingProtocols:
		if w.connection != "" {
			bw.WriteString("Connection: ")
			bw.WriteString(w.connection)
			bw.Write(crlf)
		}
	case w.closeAfter:
		if w.req.ProtoMinor == 1 || w.handlerClose {
			bw.WriteString("Connection: close\r\n")
		}
	case w.req.ProtoMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.Write(crlf)
	if len(w.pending) > 0 {
		p := w.pending
		w.pending = w.pending[:0]
		w.writeBody(p)
	}
}

// hasUndeclaredTrailers reports whether the handler set trailers with
// http.TrailerPrefix, which only chunked encoding can carry.
func (w *response) hasUndeclaredTrailers() bool {
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody {
		if w.head {
			w.written += int64(len(p))
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if len(w.pending)+len(p) <= pendingMax {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	return w.writeBody(p)
}

func (w *response) writeBody(p []byte) (int, error) {
	bw := w.c.bw
	if len(p) == 0 {
		// An empty chunk would end the body.
		return 0, nil
	}
	if w.chunking {
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(len(p)), 16))
		bw.Write(crlf)
	}
	n, err := bw.Write(p)
	if w.chunking && err == nil {
		_, err = bw.Write(crlf)
	}
	return n, err
}

// Flush sends what is buffered: the head, committed with chunked encoding
// (or a close-delimited body) when the length is not known yet.
func (w *response) Flush() {
	_ = w.FlushError()
}

// FlushError is Flush that reports a failed write (http.ResponseController).
func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	return w.c.bw.Flush()
}

// finish ends the response when the handler has returned: the head if it
// is still held, the last chunk and trailers, and the flush. It reports
// whether the connection can serve another request.
func (w *response) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	bw := w.c.bw
	if w.chunking {
		bw.WriteString("0\r\n")
		w.writeTrailers(bw)
		bw.Write(crlf)
	}
	if err := bw.Flush(); err != nil {
		return false
	}
	if w.length >= 0 && !w.noBody && w.written != w.length {
		// Fewer bytes than announced: the client would wait for the rest.
		return false
	}
	if w.body != nil && !w.body.finish() {
		return false
	}
	return !w.closeAfter
}

func (w *response) writeTrailers(bw *bufio.Writer) {
	for _, k := range w.trailers {
		if vv := w.header[k]; len(vv) > 0 && httpguts.ValidTrailerHeader(k) {
			writeField(bw, k, vv)
		}
	}
	for k, vv := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && httpguts.ValidTrailerHeader(name) {
			writeField(bw, name, vv)
		}
	}
}

// Hijack hands the connection to the handler (an upgrade): the server
// neither reads nor writes it again, nor closes it. Bytes the server
// buffered from the client are in the returned reader.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader && !w.committed {
		w.commit(false)
	}
	if err := w.c.bw.Flush(); err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	return w.c.hijack()
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
	_ http.Hijacker       = (*response)(nil)
)

// bodyAllowed reports whether a response with this status can have a body
// (RFC 9110 §6.4.1).
func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

func writeStatusLine(bw *bufio.Writer, minor, code int, scratch []byte) {
	if minor == 1 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	bw.Write(strconv.AppendInt(scratch, int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.Write(crlf)
}

func writeContentLength(bw *bufio.Writer, n int64, scratch []byte) {
	bw.WriteString("Content-Length: ")
	bw.Write(strconv.AppendInt(scratch, n, 10))
	bw.Write(crlf)
}

// writeField writes a header field, one line per value. Values have CR
// and LF replaced by spaces, as net/http does, so that a value from
// upstream cannot add fields.
func writeField(bw *bufio.Writer, k string, vv []string) {
	if !httpguts.ValidHeaderFieldName(k) {
		return
	}
	for _, v := range vv {
		bw.WriteString(k)
		bw.WriteString(": ")
		if strings.ContainsAny(v, "\r\n") {
			v = newlineToSpace.Replace(v)
		}
		bw.WriteString(h1wire.TrimOWS(v))
		bw.Write(crlf)
	}
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

// cachedDate is the Date field value of the current second.
type cachedDate struct {
	unix int64
	text []byte
}

var dateCache atomic.Pointer[cachedDate]

// appendDate appends the current time in HTTP's format, formatted once a
// second.
func appendDate(b []byte) []byte {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.unix == now.Unix() {
		return append(b, d.text...)
	}
	d := &cachedDate{unix: now.Unix(), text: now.UTC().AppendFormat(nil, http.TimeFormat)}
	dateCache.Store(d)
	return append(b, d.text...)
}
