package hcm

import (
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/tcp"
)

// PeerHeader carries the calling workload's metadata from the outbound proxy
// to the inbound one, as Istio's metadata exchange does:
// "service=<svc>,namespace=<ns>,version=<v>". It is sent only over mutual
// TLS, believed only when its service and namespace are those of the
// verified peer certificate, and never reaches an app.
const PeerHeader = "X-Weft-Peer"

// exchange is the state of one request, allocated together: the
// observers' record, the counters of its bodies and the upstream request.
// Exchanges are reused (exchanges) unless something may hold one after
// its request: see held.
type exchange struct {
	rec  observe.Request
	body countingBody
	w    countingWriter
	req  http.Request
	url  url.URL
	// held says something other than the connection manager may still
	// use the exchange, or the downstream request, once ServeHTTP has
	// returned: an upstream transport that writes requests from a
	// goroutine of its own (an attempt whose response is not
	// cluster.Released, or that failed), or a connection handed to an
	// upgrade. Neither is then reused.
	held bool
}

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// requestReleaser is a server's ResponseWriter that can reuse a request's
// memory for the connection's next one (h1server's).
type requestReleaser interface{ ReleaseRequest() }

// release ends an exchange the observers have seen: unless it is held, the
// server may reuse the downstream request and the exchange is reused.
func (ex *exchange) release(w http.ResponseWriter) {
	if ex.held {
		return
	}
	if rr, ok := w.(requestReleaser); ok {
		rr.ReleaseRequest()
	}
	*ex = exchange{}
	exchanges.Put(ex)
}

// countingBody counts the request body bytes read from downstream. The
// upstream transport may still read it after the exchange has ended, so
// the count is atomic.
type countingBody struct {
	rc io.ReadCloser
	n  atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// countingWriter counts the response body bytes sent downstream.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the server's writer (Hijack).
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// flagsOfFilter is the flag a filter's refusal sets, by filter name.
func flagsOfFilter(name string) observe.Flags {
	switch name {
	case "envoy.filters.http.rbac":
		return observe.Denied
	case "envoy.filters.http.jwt_authn":
		return observe.Unauthenticated
	case "envoy.filters.http.local_ratelimit", "envoy.filters.http.ratelimit":
		return observe.RateLimited
	case "envoy.filters.http.fault":
		return observe.FaultInjected
	}
	return 0
}

// peerCache remembers the identity parsed from recent peer certificates:
// requests between proxies share a few pooled connections, whose
// certificate is one pointer per connection. Two connections whose
// certificates share a slot take turns in it, and every turn costs a parse
// and two allocations; with 256 slots a few dozen connections seldom do.
type peerCache struct {
	slots [peerCacheSlots]atomic.Pointer[peerEntry]
}

// peerCacheBits sizes the cache: 1<<peerCacheBits slots.
const (
	peerCacheBits  = 8
	peerCacheSlots = 1 << peerCacheBits
)

type peerEntry struct {
	cert *x509.Certificate
	peer observe.Peer
}

// peer returns the identity of a verified client certificate: its SPIFFE
// ID, and the service and namespace in it.
func (c *peerCache) peer(cert *x509.Certificate) observe.Peer {
	// Fibonacci hashing: the top bits of the pointer multiplied by 2^64/φ
	// spread the addresses of one allocation size class over the slots.
	h := uint64(uintptr(unsafe.Pointer(cert))) * 0x9e3779b97f4a7c15
	slot := &c.slots[h>>(64-peerCacheBits)]
	if e := slot.Load(); e != nil && e.cert == cert {
		return e.peer
	}
	p := tcp.PeerOf(cert)
	slot.Store(&peerEntry{cert: cert, peer: p})
	return p
}

// peerHeaderValue is the PeerHeader value describing p, or "".
func peerHeaderValue(p observe.Peer) string {
	if p.Service == "" || p.Namespace == "" {
		return ""
	}
	return "service=" + p.Service + ",namespace=" + p.Namespace + ",version=" + p.Version
}

// peerVersion returns the version a PeerHeader value states when its service
// and namespace are the verified peer's, else "".
func peerVersion(v string, verified observe.Peer) string {
	var svc, ns, ver string
	for v != "" {
		var kv string
		kv, v, _ = strings.Cut(v, ",")
		k, val, _ := strings.Cut(kv, "=")
		switch k {
		case "service":
			svc = val
		case "namespace":
			ns = val
		case "version":
			ver = val
		}
	}
	if svc == "" || svc != verified.Service || ns != verified.Namespace {
		return ""
	}
	return ver
}
