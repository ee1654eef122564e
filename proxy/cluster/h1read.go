package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/weftmesh/weft/internal/ascii"
	"github.com/weftmesh/weft/proxy/h1wire"
	"golang.org/x/net/http/httpguts"
)

// maxResponseHead bounds a response's status line and header, as Envoy's
// max_response_headers_kb (60 KiB) does; net/http's ReadResponse has no
// bound of its own.
const maxResponseHead = 64 << 10

// errUpstream is the error of a response the transport refuses.
type errUpstream struct{ reason string }

func (e *errUpstream) Error() string { return "malformed upstream response: " + e.reason }

func badResponse(format string, args ...any) error {
	return &errUpstream{reason: fmt.Sprintf(format, args...)}
}

// bodyKind is how a response body is delimited.
type bodyKind uint8

const (
	noBody      bodyKind = iota
	sizedBody            // Content-Length
	chunkedBody          // Transfer-Encoding: chunked
	closeBody            // until the connection closes
)

// readResponse reads the head of a response to req from br and how its
// body is delimited: what http.ReadResponse reads for the requests
// h1Transport sends, with a third of its allocations (the head is one
// string, the header's names and values slices of it). It is stricter
// where two readers could read a response two ways: it refuses obs-fold
// lines, whitespace before a colon, control characters in fields, both
// Transfer-Encoding and Content-Length (net/http drops the latter), HTTP
// versions other than 1.0 and 1.1, and heads over maxResponseHead.
// FuzzReadResponse compares the two.
//
// It fills res, which must be zero but for Header: an empty map to fill,
// kept from an earlier response, or nil for a new one. The body is left
// in br; res.Body is the caller's to set (see h1Body), but for
// http.NoBody. A connection that closed before the first byte of the head
// is io.EOF, within it io.ErrUnexpectedEOF, as from http.ReadResponse.
func readResponse(br *bufio.Reader, req *http.Request, scratch *[]byte, res *http.Response) (bodyKind, error) {
	head, err := h1wire.ReadHead(br, maxResponseHead, scratch, false)
	switch {
	case errors.Is(err, h1wire.ErrTruncated):
		return 0, fmt.Errorf("upstream response head: %w", io.ErrUnexpectedEOF)
	case errors.Is(err, h1wire.ErrHeadTooLarge):
		return 0, badResponse("head over %d bytes", maxResponseHead)
	case err != nil:
		return 0, err
	}
	res.Request = req
	line, rest := h1wire.NextLine(head)
	if err := parseStatusLine(res, line); err != nil {
		return 0, err
	}
	h, err := h1wire.ParseHeaderInto(res.Header, rest)
	if err != nil {
		return 0, badResponse("%v", err)
	}
	res.Header = h
	h1wire.FixPragmaCacheControl(h)

	conn := h["Connection"]
	hasClose := httpguts.HeaderValuesContainsToken(conn, "close")
	if res.ProtoMinor == 0 {
		res.Close = hasClose || !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	} else {
		res.Close = hasClose
		if hasClose {
			delete(h, "Connection")
		}
	}

	te, chunked := h["Transfer-Encoding"]
	if chunked {
		delete(h, "Transfer-Encoding")
		// An HTTP/1.0 message cannot be chunked: the field is ignored,
		// as net/http ignores it.
		chunked = res.ProtoMinor == 1
	}
	cls, hasCL := h["Content-Length"]
	if chunked {
		if len(te) != 1 || !ascii.EqualFold(te[0], "chunked") {
			return 0, badResponse("unsupported transfer encoding %q", te)
		}
		if hasCL {
			return 0, badResponse("both Transfer-Encoding and Content-Length")
		}
		res.TransferEncoding = h1wire.ChunkedTE
	}
	length := int64(-1)
	if hasCL {
		n, err := h1wire.ParseContentLength(cls)
		if err != nil {
			return 0, badResponse("%v", err)
		}
		if len(cls) > 1 {
			h["Content-Length"] = cls[:1:1]
		}
		length = n
	}

	if err := declaredTrailer(res, chunked); err != nil {
		return 0, err
	}
	code := res.StatusCode
	if req.Method == http.MethodHead || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		// No body, whatever the framing says. A HEAD response's
		// Content-Length is the length of the GET's body.
		res.ContentLength = 0
		if req.Method == http.MethodHead {
			res.ContentLength = length
		}
		res.Body = http.NoBody
		return noBody, nil
	}
	switch {
	case chunked:
		res.ContentLength = -1
		return chunkedBody, nil
	case length == 0:
		res.Body = http.NoBody
		return noBody, nil
	case length > 0:
		res.ContentLength = length
		return sizedBody, nil
	}
	// Neither: the body lasts until the connection closes.
	res.ContentLength = -1
	res.Close = true
	return closeBody, nil
}

// parseStatusLine reads "HTTP-version SP status-code [SP reason]".
func parseStatusLine(res *http.Response, line string) error {
	proto, status, ok := strings.Cut(line, " ")
	if !ok {
		return badResponse("malformed status line %q", line)
	}
	minor, ok := h1wire.ParseVersion(proto)
	if !ok {
		return badResponse("unsupported HTTP version %q", proto)
	}
	res.ProtoMajor, res.ProtoMinor = 1, minor
	res.Proto = proto
	status = strings.TrimLeft(status, " ")
	code, _, _ := strings.Cut(status, " ")
	if len(code) != 3 || code[0] < '1' || code[0] > '9' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return badResponse("malformed status code %q", code)
	}
	res.StatusCode = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	res.Status = status
	return nil
}

// declaredTrailer moves the Trailer field of a chunked response into
// res.Trailer, its keys with no values yet, as net/http does; the body
// fills them. Fields that frame the message cannot be trailers.
func declaredTrailer(res *http.Response, chunked bool) error {
	vv, ok := res.Header["Trailer"]
	if !ok || !chunked {
		return nil
	}
	delete(res.Header, "Trailer")
	var trailer http.Header
	for _, v := range vv {
		for key := range strings.SplitSeq(v, ",") {
			key = h1wire.TrimOWS(key)
			if key == "" {
				continue
			}
			key = http.CanonicalHeaderKey(key)
			switch key {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return badResponse("bad trailer key %q", key)
			}
			if trailer == nil {
				trailer = http.Header{}
			}
			trailer[key] = nil
		}
	}
	res.Trailer = trailer
	return nil
}

// maxTrailer bounds a chunked response's trailer section.
const maxTrailer = 64 << 10

// readTrailer reads a chunked body's trailer section, after its last
// chunk, into res.Trailer.
func readTrailer(br *bufio.Reader, res *http.Response, scratch *[]byte) error {
	b, err := br.Peek(1)
	if err == nil && b[0] == '\r' {
		b, err = br.Peek(2)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	// The trailer section must end in CRLF CRLF, as net/http requires:
	// a bare LF is no end of it here.
	if b[0] == '\r' && b[1] == '\n' {
		_, _ = br.Discard(2)
		return nil
	}
	if b[0] == '\n' {
		return badResponse("trailer section not ended by CRLF")
	}
	section, err := h1wire.ReadHead(br, maxTrailer, scratch, false)
	switch {
	case errors.Is(err, h1wire.ErrTruncated):
		return io.ErrUnexpectedEOF
	case errors.Is(err, h1wire.ErrHeadTooLarge):
		return badResponse("trailer section over %d bytes", maxTrailer)
	case err != nil:
		return err
	}
	if !strings.HasSuffix(section, "\r\n\r\n") {
		return badResponse("trailer section not ended by CRLF")
	}
	t, err := h1wire.ParseHeader(section)
	if err != nil {
		return badResponse("trailer: %v", err)
	}
	if res.Trailer == nil {
		res.Trailer = t
		return nil
	}
	for k, vv := range t {
		res.Trailer[k] = vv
	}
	return nil
}
