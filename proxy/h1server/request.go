package h1server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// requestError is a request the server refuses: it answers with code and
// closes the connection.
type requestError struct {
	code   int
	reason string
}

func (e *requestError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.code, http.StatusText(e.code), e.reason)
}

func badRequest(format string, args ...any) error {
	return &requestError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// errHeaderTooLarge is a request line and header over the size limit.
var errHeaderTooLarge = &requestError{http.StatusRequestHeaderFieldsTooLarge, "request header too large"}

// chunkedTE is the TransferEncoding of every chunked request. Its capacity
// is its length, so that an append copies it.
var chunkedTE = []string{"chunked"}

// readHead reads a request's head — request line, header fields and the
// empty line that ends them — from br and returns it as one string, with
// the empty lines some clients send before a request (RFC 9112 §2.2)
// skipped. A head that fits in br's buffer, as nearly all do, is copied
// once, from the buffer; a larger one is gathered in scratch. More than
// limit bytes is errHeaderTooLarge.
func readHead(br *bufio.Reader, limit int, scratch *[]byte) (string, error) {
	total := 0
	for {
		if _, err := br.Peek(1); err != nil {
			return "", err
		}
		buf, _ := br.Peek(br.Buffered())
		if len(buf) == 1 && buf[0] == '\r' {
			// Half an empty line, or a stray CR: see what follows.
			if _, err := br.Peek(2); err != nil {
				return "", unexpectedEOF(err)
			}
			continue
		}
		skip := leadingEmptyLines(buf)
		if skip == 0 {
			break
		}
		if total += skip; total > limit {
			return "", errHeaderTooLarge
		}
		_, _ = br.Discard(skip)
	}
	scanned := 0 // bytes of br's buffer searched for the end of the head
	for {
		buf, _ := br.Peek(br.Buffered())
		if end := headEnd(buf, scanned); end > 0 {
			if total+end > limit {
				return "", errHeaderTooLarge
			}
			head := string(buf[:end])
			_, _ = br.Discard(end)
			return head, nil
		}
		if total+len(buf) > limit {
			return "", errHeaderTooLarge
		}
		if len(buf) == br.Size() {
			// The head does not fit in the buffer.
			return readLongHead(br, limit, scratch, total)
		}
		// The end may straddle what was searched: search again from 3
		// bytes back ("\r\n\r" seen, "\n" to come).
		scanned = max(len(buf)-3, 0)
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return "", unexpectedEOF(err)
		}
	}
}

// readLongHead gathers a head larger than br's buffer in scratch.
func readLongHead(br *bufio.Reader, limit int, scratch *[]byte, total int) (string, error) {
	acc := (*scratch)[:0]
	defer func() { *scratch = acc[:0] }()
	for {
		buf, _ := br.Peek(br.Buffered())
		from := max(len(acc)-3, 0)
		acc = append(acc, buf...)
		if end := headEnd(acc, from); end > 0 {
			if total+end > limit {
				return "", errHeaderTooLarge
			}
			// Give back what follows the head.
			_, _ = br.Discard(len(buf) - (len(acc) - end))
			return string(acc[:end]), nil
		}
		_, _ = br.Discard(len(buf))
		if total+len(acc) > limit {
			return "", errHeaderTooLarge
		}
		if _, err := br.Peek(1); err != nil {
			return "", unexpectedEOF(err)
		}
	}
}

func unexpectedEOF(err error) error {
	if errors.Is(err, bufio.ErrBufferFull) {
		return errHeaderTooLarge
	}
	if errors.Is(err, io.EOF) {
		return errTruncated
	}
	return err
}

// errTruncated is a connection that ended within a request head.
var errTruncated = errors.New("connection closed within a request head")

// leadingEmptyLines returns the length of the CRLF and LF lines at the
// start of b.
func leadingEmptyLines(b []byte) int {
	n := 0
	for {
		switch {
		case len(b) >= n+2 && b[n] == '\r' && b[n+1] == '\n':
			n += 2
		case len(b) >= n+1 && b[n] == '\n':
			n++
		default:
			return n
		}
	}
}

// headEnd returns the length of the head at the start of b, its final
// empty line included, or 0 when b does not hold it all yet. Lines end in
// CRLF or, leniently, LF (RFC 9112 §2.2). The search starts at from.
func headEnd(b []byte, from int) int {
	for i := from; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// nextLine returns the first line of s without its line ending, and the
// rest.
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// parseHead fills req from a request head read by readHead: the request
// line, the URL, the header, Host and Close. Strings in req share the
// head's memory. Framing (the body) is left to parseFraming.
func parseHead(req *http.Request, head string) error {
	line, rest := nextLine(head)
	if err := parseRequestLine(req, line); err != nil {
		return err
	}
	h, err := parseHeader(rest)
	if err != nil {
		return err
	}
	req.Header = h
	hosts := h["Host"]
	switch {
	case len(hosts) > 1:
		return badRequest("too many Host headers")
	case len(hosts) == 0 && req.ProtoMinor == 1 && req.Method != http.MethodConnect:
		return badRequest("missing required Host header")
	case len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]):
		return badRequest("malformed Host header")
	}
	// An absolute-form target names the host; any Host field is ignored
	// (RFC 9112 §3.2.2).
	req.Host = req.URL.Host
	if req.Host == "" && len(hosts) == 1 {
		req.Host = hosts[0]
	}
	delete(h, "Host")
	fixPragmaCacheControl(h)
	conn := h["Connection"]
	if req.ProtoMinor == 0 {
		req.Close = !httpguts.HeaderValuesContainsToken(conn, "keep-alive") || httpguts.HeaderValuesContainsToken(conn, "close")
	} else {
		req.Close = httpguts.HeaderValuesContainsToken(conn, "close")
	}
	return nil
}

// parseRequestLine reads "METHOD SP request-target SP HTTP-version".
// Only HTTP/1.0 and HTTP/1.1 are served; "PRI * HTTP/2.0" never reaches
// here (the server hands such connections over first).
func parseRequestLine(req *http.Request, line string) error {
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return badRequest("malformed request line")
	}
	if !validToken(method) {
		return badRequest("invalid method")
	}
	switch proto {
	case "HTTP/1.1":
		req.ProtoMajor, req.ProtoMinor = 1, 1
	case "HTTP/1.0":
		req.ProtoMajor, req.ProtoMinor = 1, 0
	default:
		if strings.HasPrefix(proto, "HTTP/") {
			return &requestError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
		}
		return badRequest("malformed HTTP version")
	}
	req.Method, req.RequestURI, req.Proto = method, target, proto
	rawURL := target
	// CONNECT's target is an authority (host:port), as net/http reads it.
	authority := method == http.MethodConnect && !strings.HasPrefix(target, "/")
	if authority {
		rawURL = "http://" + target
	}
	u, err := url.ParseRequestURI(rawURL)
	if err != nil {
		return badRequest("invalid request target")
	}
	if authority {
		u.Scheme = ""
	}
	req.URL = u
	return nil
}

// parseHeader parses header field lines, each ending in CRLF or LF, up to
// and including the empty line. It refuses what could be read two ways by
// two parsers (RFC 9112 §11.2): obs-fold continuation lines, whitespace
// before the colon, and control characters (CR, NUL...) in names or
// values.
func parseHeader(s string) (http.Header, error) {
	n := strings.Count(s, "\n")
	h := make(http.Header, n)
	// One backing array for the values: most fields appear once.
	vals := make([]string, 0, n)
	for {
		var line string
		line, s = nextLine(s)
		if line == "" {
			return h, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, badRequest("obsolete line folding in header")
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, badRequest("malformed header line")
		}
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, badRequest("invalid header name")
		}
		value = strings.Trim(value, " \t")
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, badRequest("invalid header value")
		}
		key := http.CanonicalHeaderKey(name)
		if vv, dup := h[key]; dup {
			h[key] = append(vv, value)
			continue
		}
		vals = append(vals, value)
		h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
}

// validToken reports whether s is a non-empty RFC 9110 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

var noCache = []string{"no-cache"}

// fixPragmaCacheControl treats "Pragma: no-cache" as "Cache-Control:
// no-cache" when the latter is absent (RFC 9111 §5.4), as net/http does.
func fixPragmaCacheControl(h http.Header) {
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = noCache
		}
	}
}

// framing is how a request's body is delimited.
type framing struct {
	chunked bool
	length  int64 // Content-Length; -1 when chunked
	// expectContinue says the client waits for "100 Continue" before it
	// sends the body.
	expectContinue bool
}

// parseFraming reads how the body of req is delimited, refusing the
// ambiguous framings request smuggling relies on: Content-Length together
// with Transfer-Encoding, differing Content-Length values, and
// Transfer-Encoding on HTTP/1.0 (RFC 9112 §6). It sets ContentLength and
// TransferEncoding and takes the framing fields out of the header, so
// that they are not forwarded as they came; the body itself is the
// caller's. An Expect other than 100-continue is a 417.
func parseFraming(req *http.Request) (framing, error) {
	h := req.Header
	var f framing
	te, hasTE := h["Transfer-Encoding"]
	cls, hasCL := h["Content-Length"]
	switch {
	case hasTE && hasCL:
		return f, badRequest("both Transfer-Encoding and Content-Length")
	case hasTE && req.ProtoMinor == 0:
		return f, badRequest("Transfer-Encoding in an HTTP/1.0 request")
	case hasTE:
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return f, &requestError{http.StatusNotImplemented, "unsupported transfer encoding"}
		}
		delete(h, "Transfer-Encoding")
		// Request trailers are read and dropped: the Trailer field that
		// announces them goes too.
		delete(h, "Trailer")
		f.chunked, f.length = true, -1
		req.TransferEncoding = chunkedTE
	case hasCL:
		n, err := parseContentLength(cls)
		if err != nil {
			return f, err
		}
		if len(cls) > 1 {
			h["Content-Length"] = cls[:1:1]
		}
		f.length = n
	}
	req.ContentLength = f.length
	if ex, ok := h["Expect"]; ok {
		if len(ex) != 1 || !strings.EqualFold(ex[0], "100-continue") {
			return f, &requestError{http.StatusExpectationFailed, "unsupported expectation"}
		}
		// This server answers the expectation itself, as Envoy does: the
		// field is not forwarded.
		delete(h, "Expect")
		f.expectContinue = req.ProtoMinor == 1 && f.length != 0
	}
	return f, nil
}

// parseContentLength reads Content-Length values: digits only, every
// value the same (RFC 9110 §8.6).
func parseContentLength(values []string) (int64, error) {
	first := values[0]
	for _, v := range values[1:] {
		if v != first {
			return 0, badRequest("differing Content-Length values")
		}
	}
	if first == "" {
		return 0, badRequest("empty Content-Length")
	}
	for i := 0; i < len(first); i++ {
		if first[i] < '0' || first[i] > '9' {
			return 0, badRequest("invalid Content-Length")
		}
	}
	n, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, badRequest("invalid Content-Length")
	}
	return n, nil
}
