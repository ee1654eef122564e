package h1server

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/weftmesh/weft/proxy/h1wire"
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

// errTruncated is a connection that ended within a request head.
var errTruncated = errors.New("connection closed within a request head")

// readHead reads a request head (h1wire.ReadHead, empty lines before it
// skipped), with h1wire's errors turned into the server's.
func readHead(br *bufio.Reader, limit int, scratch *[]byte) (string, error) {
	head, err := h1wire.ReadHead(br, limit, scratch, true)
	switch {
	case errors.Is(err, h1wire.ErrHeadTooLarge):
		return "", errHeaderTooLarge
	case errors.Is(err, h1wire.ErrTruncated):
		return "", errTruncated
	}
	return head, err
}

// asBadRequest turns h1wire's *FieldError into a 400.
func asBadRequest(err error) error {
	if fe, ok := errors.AsType[*h1wire.FieldError](err); ok {
		return badRequest("%s", fe.Reason)
	}
	return err
}

// parseHead fills req from a request head read by readHead: the request
// line, the URL, the header, Host and Close. Strings in req share the
// head's memory. The header goes into req.Header if it is an empty map,
// a new one if it is nil. Framing (the body) is left to parseFraming.
func parseHead(req *http.Request, head string) error {
	line, rest := h1wire.NextLine(head)
	if err := parseRequestLine(req, line); err != nil {
		return err
	}
	h, err := h1wire.ParseHeaderInto(req.Header, rest)
	if err != nil {
		return asBadRequest(err)
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
	h1wire.FixPragmaCacheControl(h)
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
	if !h1wire.ValidToken(method) {
		return badRequest("invalid method")
	}
	minor, ok := h1wire.ParseVersion(proto)
	switch {
	case ok:
		req.ProtoMajor, req.ProtoMinor = 1, minor
	case strings.HasPrefix(proto, "HTTP/"):
		return &requestError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	default:
		return badRequest("malformed HTTP version")
	}
	req.Method, req.RequestURI, req.Proto = method, target, proto
	if u := req.URL; u != nil && originForm(target, u) {
		return nil
	}
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

// originForm fills u from a request target in origin form, "/path" or
// "/path?query", as url.ParseRequestURI would, when its path has nothing to
// unescape or escape: what nearly every request carries, read without
// allocating. It reports false for any other target, and leaves u alone.
func originForm(target string, u *url.URL) bool {
	if target == "" || target[0] != '/' {
		return false
	}
	path, query, hasQuery := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		if !plainPathByte[path[i]] {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	*u = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	return true
}

// plainPathByte marks the bytes a path can hold as they are: net/url
// neither unescapes them nor escapes them in a path (RFC 3986 unreserved,
// and the sub-delimiters and separators it leaves alone).
var plainPathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

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
		req.TransferEncoding = h1wire.ChunkedTE
	case hasCL:
		n, err := h1wire.ParseContentLength(cls)
		if err != nil {
			return f, asBadRequest(err)
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
