// Package h1wire reads the heads of HTTP/1.x messages: what the proxy's
// HTTP/1.1 server (proxy/h1server, requests) and its upstream client
// (proxy/cluster, responses) share. A head is read as one string, copied
// once from the connection's buffer, and the header's names and values are
// slices of it. It refuses what two parsers could read two ways (RFC 9112
// §11.2): obs-fold continuation lines, whitespace before a colon, control
// characters in names or values, differing or malformed Content-Length.
package h1wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

var (
	// ErrHeadTooLarge is a head over the limit given to ReadHead.
	ErrHeadTooLarge = errors.New("message head too large")
	// ErrTruncated is a connection that ended within a message head.
	ErrTruncated = errors.New("connection closed within a message head")
)

// ChunkedTE is the TransferEncoding of every chunked message read here.
// Its capacity is its length, so that an append copies it.
var ChunkedTE = []string{"chunked"}

// FieldError is a malformed header field or framing value; Reason says
// what is wrong, for a 400 to a client or the error of an upstream
// exchange.
type FieldError struct{ Reason string }

func (e *FieldError) Error() string { return e.Reason }

func fieldError(reason string) error { return &FieldError{Reason: reason} }

// ReadHead reads a message head — start line, header fields and the empty
// line that ends them — from br and returns it as one string. With
// skipEmpty, the empty lines some clients send before a request (RFC 9112
// §2.2) are skipped first. A head that fits in br's buffer, as nearly all
// do, is copied once, from the buffer; a larger one is gathered in
// scratch. More than limit bytes is ErrHeadTooLarge; the end of the
// connection within the head is ErrTruncated, before its first byte
// io.EOF.
func ReadHead(br *bufio.Reader, limit int, scratch *[]byte, skipEmpty bool) (string, error) {
	total := 0
	for skipEmpty {
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
		skip := LeadingEmptyLines(buf)
		if skip == 0 {
			break
		}
		if total += skip; total > limit {
			return "", ErrHeadTooLarge
		}
		_, _ = br.Discard(skip)
	}
	if _, err := br.Peek(1); err != nil {
		return "", err
	}
	scanned := 0 // bytes of br's buffer searched for the end of the head
	for {
		buf, _ := br.Peek(br.Buffered())
		if end := headEnd(buf, scanned); end > 0 {
			if total+end > limit {
				return "", ErrHeadTooLarge
			}
			head := string(buf[:end])
			_, _ = br.Discard(end)
			return head, nil
		}
		if total+len(buf) > limit {
			return "", ErrHeadTooLarge
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
				return "", ErrHeadTooLarge
			}
			// Give back what follows the head.
			_, _ = br.Discard(len(buf) - (len(acc) - end))
			return string(acc[:end]), nil
		}
		_, _ = br.Discard(len(buf))
		if total+len(acc) > limit {
			return "", ErrHeadTooLarge
		}
		if _, err := br.Peek(1); err != nil {
			return "", unexpectedEOF(err)
		}
	}
}

func unexpectedEOF(err error) error {
	if errors.Is(err, bufio.ErrBufferFull) {
		return ErrHeadTooLarge
	}
	if errors.Is(err, io.EOF) {
		return ErrTruncated
	}
	return err
}

// LeadingEmptyLines returns the length of the CRLF and LF lines at the
// start of b.
func LeadingEmptyLines(b []byte) int {
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

// NextLine returns the first line of s without its line ending, and the
// rest.
func NextLine(s string) (line, rest string) {
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

// ParseHeader parses header field lines, each ending in CRLF or LF, up to
// and including the empty line. It refuses, with a *FieldError, what
// could be read two ways by two parsers (RFC 9112 §11.2): obs-fold
// continuation lines, whitespace before the colon, and control characters
// (CR, NUL...) in names or values.
func ParseHeader(s string) (http.Header, error) {
	return ParseHeaderInto(nil, s)
}

// ParseHeaderInto is ParseHeader filling h, which must be empty: a map
// kept from an earlier message saves allocating one per message. A nil h
// is a new map.
func ParseHeaderInto(h http.Header, s string) (http.Header, error) {
	n := strings.Count(s, "\n")
	if h == nil {
		h = make(http.Header, n)
	}
	// One backing array for the values: most fields appear once.
	vals := make([]string, 0, n)
	for {
		var line string
		line, s = NextLine(s)
		if line == "" {
			return h, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, fieldError("obsolete line folding in header")
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fieldError("malformed header line")
		}
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fieldError("invalid header name")
		}
		value = TrimOWS(value)
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, fieldError("invalid header value")
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

// TrimOWS trims the optional whitespace, spaces and tabs, around a field
// value: strings.Trim(s, " \t") without building a cut set on each call,
// which on the request path cost more than the trimming.
func TrimOWS(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}

// ParseVersion reads the HTTP/1.0 and HTTP/1.1 of a start line, the only
// versions spoken here, and returns the minor version.
func ParseVersion(proto string) (minor int, ok bool) {
	switch proto {
	case "HTTP/1.1":
		return 1, true
	case "HTTP/1.0":
		return 0, true
	}
	return 0, false
}

// ValidToken reports whether s is a non-empty RFC 9110 token.
func ValidToken(s string) bool {
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

// FixPragmaCacheControl treats "Pragma: no-cache" as "Cache-Control:
// no-cache" when the latter is absent (RFC 9111 §5.4), as net/http does.
func FixPragmaCacheControl(h http.Header) {
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = noCache
		}
	}
}

// ParseContentLength reads Content-Length values: digits only, every
// value the same (RFC 9110 §8.6). What is wrong is a *FieldError.
func ParseContentLength(values []string) (int64, error) {
	first := values[0]
	for _, v := range values[1:] {
		if v != first {
			return 0, fieldError("differing Content-Length values")
		}
	}
	if first == "" {
		return 0, fieldError("empty Content-Length")
	}
	for i := 0; i < len(first); i++ {
		if first[i] < '0' || first[i] > '9' {
			return 0, fieldError("invalid Content-Length")
		}
	}
	n, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, fieldError("invalid Content-Length")
	}
	return n, nil
}
