// Package tcp forwards opaque byte streams: the TcpProxy network filter, and
// the splice both ways that WebSocket upgrades use once the HTTP handshake is
// done. Copies propagate half-closes, reuse pooled buffers, and splice in
// the kernel when both sides are plain TCP sockets.
package tcp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/proxy/lb"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/sockio"
)

// HandshakeTimeout bounds a downstream TLS handshake.
const HandshakeTimeout = 10 * time.Second

// Proxy forwards each downstream connection to an endpoint of one cluster.
type Proxy struct {
	// Backend is the configured cluster; its Cluster is nil when no such
	// cluster is configured, and connections are then closed at once.
	Backend
	// Weighted, when set, splits connections by weight (weighted_clusters)
	// and replaces Backend.
	Weighted []Backend
	// Direction is the listener's side of the proxy, Listener its name and
	// Local this proxy's own workload: the destination of inbound
	// connections, the source of outbound ones.
	Direction observe.Direction
	Listener  string
	Local     observe.Peer
	// Observers see every connection, in order.
	Observers []observe.ConnObserver
	// Log may be nil.
	Log *slog.Logger
}

var discard = slog.New(slog.DiscardHandler)

func (p *Proxy) log() *slog.Logger {
	if p.Log == nil {
		return discard
	}
	return p.Log
}

// Serve proxies down until both directions end, then closes it. A
// *tls.Conn is handshaken first. ctx ends the dial; closing the connections
// (see Sessions) ends the copy.
func (p *Proxy) Serve(ctx context.Context, down net.Conn) {
	defer down.Close()
	if tc, ok := down.(*tls.Conn); ok {
		hctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			p.log().Debug("downstream TLS handshake failed", "remote", down.RemoteAddr().String(), "err", err)
			return
		}
	}
	b := p.pick()
	rec := p.record(down, b)
	defer p.done(rec)
	if b.Cluster == nil {
		p.log().Debug("tcp proxy: cluster not found", "cluster", b.Name)
		return
	}
	// PickFor: an ORIGINAL_DST cluster's endpoint is the destination ctx
	// carries (a captured connection's).
	ep, err := b.Cluster.PickFor(ctx, lb.PickInfo{})
	if err != nil {
		p.log().Debug("tcp proxy: no healthy upstream", "cluster", b.Name)
		return
	}
	rec.Upstream = ep.Address()
	if p.Direction != observe.Inbound {
		rec.Destination.Version = ep.Version()
	}
	up, err := b.Cluster.DialStream(ctx, ep)
	if err != nil {
		p.log().Debug("tcp proxy: upstream connect failed", "cluster", b.Name, "err", err)
		return
	}
	rec.Sent, rec.Received = PipeCount(down, up)
}

// record starts the record of a connection to backend b and shows it to
// the observers.
func (p *Proxy) record(down net.Conn, b *Backend) *observe.Conn {
	rec := &observe.Conn{Direction: p.Direction, Listener: p.Listener, Start: time.Now()}
	if b != nil {
		rec.Cluster = b.Name
	}
	if p.Direction == observe.Inbound {
		rec.Destination = p.Local
		if rec.Destination.Service == "" && b != nil {
			// A proxy that was not told its workload: the inbound cluster says.
			rec.Destination = b.Destination
		}
		if tc, ok := down.(*tls.Conn); ok {
			if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
				rec.MTLS = true
				rec.Source = PeerOf(certs[0])
			}
		}
	} else {
		rec.Source = p.Local
		if b != nil {
			rec.Destination, rec.MTLS = b.Destination, b.MTLS
		}
	}
	for _, o := range p.Observers {
		o.ConnStart(rec)
	}
	return rec
}

func (p *Proxy) done(rec *observe.Conn) {
	rec.Duration = time.Since(rec.Start)
	for _, o := range p.Observers {
		o.ConnDone(rec)
	}
}

// Refused records a connection that a network filter closed before the
// proxy took it (an RBAC denial), with the reason.
func (p *Proxy) Refused(down net.Conn, reason string) {
	if len(p.Observers) == 0 {
		return
	}
	var b *Backend
	if len(p.Weighted) == 0 {
		b = &p.Backend
	}
	rec := p.record(down, b)
	rec.Denied, rec.Reason = true, reason
	p.done(rec)
}

// PeerOf returns the workload named by a verified peer certificate's
// SPIFFE ID (spiffe://<td>/ns/<ns>/sa/<svc>); fields are "" when it has none.
func PeerOf(cert *x509.Certificate) observe.Peer {
	var p observe.Peer
	if len(cert.URIs) == 0 || cert.URIs[0].Scheme != "spiffe" {
		return p
	}
	u := cert.URIs[0]
	p.ID = u.String()
	if rest, ok := strings.CutPrefix(u.Path, "/ns/"); ok {
		if ns, svc, ok := strings.Cut(rest, "/sa/"); ok && !strings.Contains(svc, "/") {
			p.Namespace, p.Service = ns, svc
		}
	}
	return p
}

// Pipe copies a to b and b to a until both directions end, then closes both.
// The end of one direction (EOF) half-closes the other side's write end; an
// error in either direction closes both at once.
func Pipe(a, b net.Conn) { PipeCount(a, b) }

// PipeCount is Pipe, and returns the bytes copied from a to b and from b to a.
func PipeCount(a, b net.Conn) (aToB, bToA int64) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		bToA = half(a, b)
	}()
	aToB = half(b, a)
	<-done
	a.Close()
	b.Close()
	return aToB, bToA
}

// half copies src to dst, then half-closes dst. It returns the bytes copied.
func half(dst, src net.Conn) int64 {
	n, err := copyConn(dst, src)
	if err != nil {
		dst.Close()
		src.Close()
		return n
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return n
		}
	}
	dst.Close()
	return n
}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func copyConn(dst, src net.Conn) (int64, error) {
	if d, s := sockio.Socket(dst), sockio.Socket(src); d != nil && s != nil {
		return d.ReadFrom(s) // splice(2)
	}
	buf := buffers.Get().(*[]byte)
	defer buffers.Put(buf)
	n, err := io.CopyBuffer(writerOnly{dst}, readerOnly{src}, *buf)
	if errors.Is(err, net.ErrClosed) {
		// The other direction failed and closed both sides.
		err = nil
	}
	return n, err
}

// readerOnly and writerOnly hide ReadFrom and WriteTo, whose fallbacks would
// allocate their own buffers.
type readerOnly struct{ io.Reader }
type writerOnly struct{ io.Writer }
