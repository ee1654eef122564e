package hcm

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"
)

// Reasons in x-weft-error, and the body of each local reply.
type localError struct {
	reason []string // the header value, shared by every reply
	body   string
}

var (
	errRouteNotFound     = localError{[]string{"route_not_found"}, ""}
	errClusterNotFound   = localError{[]string{"cluster_not_found"}, ""}
	errNoHealthyUpstream = localError{[]string{"no_healthy_upstream"}, "no healthy upstream"}
	errUpgradeFailed     = localError{[]string{"upgrade_failed"}, ""}
	errConnectFailure    = localError{[]string{"upstream_connect_failure"}, "upstream connect error or disconnect/reset before headers. reset reason: connection failure"}
	errUpstreamReset     = localError{[]string{"upstream_reset_before_response_started"}, "upstream connect error or disconnect/reset before headers. reset reason: connection termination"}
	errUpstreamTimeout   = localError{[]string{"upstream_timeout"}, "upstream request timeout"}
	errUpgradeHijack     = localError{[]string{"upgrade_failed"}, "the downstream connection cannot be upgraded"}
)

var textPlain = []string{"text/plain"}

// localReply sends a locally generated response and returns its code.
func localReply(w http.ResponseWriter, code int, e localError) int {
	h := w.Header()
	h["X-Weft-Error"] = e.reason
	if e.body != "" {
		h["Content-Type"] = textPlain
	}
	w.WriteHeader(code)
	if e.body != "" {
		_, _ = w.Write([]byte(e.body))
	}
	return code
}

// hopHeaders are meaningful only for one connection and never forwarded
// (RFC 9110 §7.6.1), with the headers the proxy sets itself.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

var (
	forwardedHTTP  = []string{"http"}
	forwardedHTTPS = []string{"https"}
	teTrailers     = []string{"trailers"}
	noUserAgent    = []string{""}
)

// requestHeader returns the header of the upstream request: r's without
// hop-by-hop headers, plus x-forwarded-proto and x-request-id when absent.
// Values are shared with r, not copied: neither side modifies them.
func (m *ConnectionManager) requestHeader(r *http.Request) http.Header {
	out := make(http.Header, len(r.Header)+2)
	for k, vv := range r.Header {
		out[k] = vv
	}
	m.rewriteRequestHeader(out, r.TLS != nil)
	return out
}

// rewriteRequestHeader turns a downstream request's header into the
// upstream request's in place: hop-by-hop headers go, x-forwarded-proto and
// x-request-id are added when absent. The forwarding path owns the header
// of the request it serves, so it saves a copy per request.
func (m *ConnectionManager) rewriteRequestHeader(h http.Header, overTLS bool) {
	conn := h["Connection"]
	// "TE: trailers" is end to end in practice: gRPC requires it.
	te := h["Te"]
	trailers := len(te) > 0 && hasToken(te, "trailers")
	for k := range h {
		if isHopHeader(k) || len(conn) > 0 && hasToken(conn, k) {
			delete(h, k)
		}
	}
	if trailers {
		h["Te"] = teTrailers
	}
	if _, ok := h["X-Forwarded-Proto"]; !ok {
		if overTLS {
			h["X-Forwarded-Proto"] = forwardedHTTPS
		} else {
			h["X-Forwarded-Proto"] = forwardedHTTP
		}
	}
	if m.cfg.RequestID {
		if _, ok := h["X-Request-Id"]; !ok {
			h["X-Request-Id"] = []string{newRequestID()}
		}
	}
	if _, ok := h["User-Agent"]; !ok {
		// An empty value keeps Go's client from adding its own.
		h["User-Agent"] = noUserAgent
	}
}

// copyResponseHeader copies an upstream response's end-to-end headers.
func copyResponseHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vv := range src {
		if isHopHeader(k) || len(conn) > 0 && hasToken(conn, k) {
			continue
		}
		dst[k] = vv
	}
}

// hasToken reports whether a comma-separated header lists token, ignoring
// case. It does not allocate.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// upgradeType returns the protocol an HTTP/1.1 request asks to upgrade to,
// lower-cased.
func upgradeType(r *http.Request) (string, bool) {
	if r.ProtoMajor != 1 {
		return "", false
	}
	c := r.Header["Connection"]
	if len(c) == 0 || !hasToken(c, "upgrade") {
		return "", false
	}
	u := r.Header.Get("Upgrade")
	if u == "" {
		return "", false
	}
	return strings.ToLower(u), true
}

// newRequestID returns a random (version 4) UUID. A request ID must be
// unique, not secret: it comes from the runtime's ChaCha8 generator, seeded
// by the system, instead of crypto/rand's system call per request.
func newRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
