package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/weftmesh/weft/internal/ascii"
	"golang.org/x/net/http/httpguts"
)

// writeRequest writes req to w as HTTP/1.1, byte for byte what
// req.Write writes for the requests h1Transport sends itself — no body or
// one of known length, no Transfer-Encoding, no trailers, no Expect, not
// CONNECT — without its
// allocations: Request.Write formats the request line and Host with
// fmt, builds a transfer writer, and sorts the header through a pooled
// slice of key/value pairs, about seven allocations a request.
// FuzzWriteRequest compares the two.
//
// Like Request.Write it closes the body, and it refuses a Content-Length
// the body does not match.
func writeRequest(w *bufio.Writer, req *http.Request, lr *io.LimitedReader) (err error) {
	defer func() {
		if req.Body != nil {
			if cerr := req.Body.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	if req.ContentLength != 0 && req.Body == nil {
		return fmt.Errorf("http: Request.ContentLength=%d with nil Body", req.ContentLength)
	}
	host := req.Host
	if host == "" {
		if req.URL == nil {
			return errors.New("http: Request.Write on Request with no Host or URL set")
		}
		host = req.URL.Host
	}
	if !isASCII(host) {
		if host, err = httpguts.PunycodeHostPort(host); err != nil {
			return err
		}
	}
	if !httpguts.ValidHostHeader(host) {
		// As Request.Write: an invalid Host is sent empty (RFC 9112 §3.2).
		host = ""
	}
	host = removeZone(host)

	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	w.WriteString(method)
	w.WriteByte(' ')
	if err := writeRequestURI(w, req); err != nil {
		return err
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")

	h := req.Header
	if ua, ok := h["User-Agent"]; !ok {
		w.WriteString("User-Agent: Go-http-client/1.1\r\n")
	} else if len(ua) > 0 && ua[0] != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(cleanValue(ua[0]))
		w.WriteString("\r\n")
	}
	if req.Close && !hasToken(h["Connection"], "close") {
		w.WriteString("Connection: close\r\n")
	}
	if sendContentLength(method, req.ContentLength) {
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(w.AvailableBuffer(), req.ContentLength, 10))
		w.WriteString("\r\n")
	}
	writeHeader(w, h)
	if _, err := w.WriteString("\r\n"); err != nil {
		return err
	}
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	*lr = io.LimitedReader{R: req.Body, N: req.ContentLength}
	n, err := w.ReadFrom(lr)
	*lr = io.LimitedReader{}
	if err != nil {
		return err
	}
	// What the body holds beyond ContentLength counts, as Request.Write
	// counts it, to say what was wrong.
	extra, err := io.Copy(io.Discard, req.Body)
	if err != nil {
		return err
	}
	if n+extra != req.ContentLength {
		return fmt.Errorf("http: ContentLength=%d with Body length %d", req.ContentLength, n+extra)
	}
	return nil
}

// writeRequestURI writes what url.URL.RequestURI returns, without
// building the string, refusing control characters as Request.Write does.
func writeRequestURI(w *bufio.Writer, req *http.Request) error {
	u := req.URL
	if u == nil {
		return errors.New("http: nil Request.URL")
	}
	var path, prefix string
	if u.Opaque != "" {
		path = u.Opaque
		if strings.HasPrefix(path, "//") {
			prefix = u.Scheme + ":"
		}
	} else if path = u.EscapedPath(); path == "" {
		path = "/"
	}
	query := u.ForceQuery || u.RawQuery != ""
	if containsCTL(prefix) || containsCTL(path) || (query && containsCTL(u.RawQuery)) {
		return errors.New("net/http: can't write control character in Request.URL")
	}
	w.WriteString(prefix)
	w.WriteString(path)
	if query {
		w.WriteByte('?')
		w.WriteString(u.RawQuery)
	}
	return nil
}

// reqExclude are the fields writeRequest writes itself, or not at all.
func reqExclude(k string) bool {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

// writeHeader writes h's fields but those of reqExclude, sorted by name as
// Header.Write sorts them. Fields with invalid names are left out, and
// values have line breaks turned to spaces and are trimmed, as there.
func writeHeader(w *bufio.Writer, h http.Header) {
	var stack [24]string
	keys := stack[:0]
	for k := range h {
		if !reqExclude(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range h[k] {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(cleanValue(v))
			w.WriteString("\r\n")
		}
	}
}

// cleanValue turns CR and LF into spaces and trims spaces, tabs and line
// breaks from both ends, as net/http does to every value it writes. It
// allocates only for a value that has a line break inside.
func cleanValue(v string) string {
	v = strings.Trim(v, " \t\r\n")
	if strings.ContainsAny(v, "\r\n") {
		b := []byte(v) // bytes, not runes: the value need not be UTF-8
		for i, c := range b {
			if c == '\r' || c == '\n' {
				b[i] = ' '
			}
		}
		v = string(b)
	}
	return v
}

// sendContentLength reports whether a request of method with a body of n
// bytes (0: none) carries Content-Length, as net/http decides: always with
// a body, and "Content-Length: 0" for the methods many servers expect one
// of.
func sendContentLength(method string, n int64) bool {
	return n > 0 || (n == 0 && (method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch))
}

// hasToken reports whether the first of values holds token, ASCII case
// insensitively, between the start or end of the value, spaces, tabs or
// commas: net/http's test of the Connection field it writes.
func hasToken(values []string, token string) bool {
	if len(values) == 0 {
		return false
	}
	v := values[0]
	if len(token) > len(v) || token == "" {
		return false
	}
	for sp := 0; sp <= len(v)-len(token); sp++ {
		if b := v[sp]; b != token[0] && b|0x20 != token[0] {
			continue
		}
		if sp > 0 && !tokenBoundary(v[sp-1]) {
			continue
		}
		if end := sp + len(token); end != len(v) && !tokenBoundary(v[end]) {
			continue
		}
		if ascii.EqualFold(v[sp:sp+len(token)], token) {
			return true
		}
	}
	return false
}

func tokenBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }

// removeZone drops the zone of an IPv6 literal host ("[fe80::1%en0]:80"):
// RFC 6874 has intermediaries take it out of outgoing requests.
func removeZone(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	i := strings.LastIndex(host, "]")
	if i < 0 {
		return host
	}
	j := strings.LastIndex(host[:i], "%")
	if j < 0 {
		return host
	}
	return host[:j] + host[i:]
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// containsCTL reports whether s holds an ASCII control character or DEL.
func containsCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' || b == 0x7f {
			return true
		}
	}
	return false
}
