// Package tcp forwards opaque byte streams: the TcpProxy network filter, and
// the splice both ways that WebSocket upgrades use once the HTTP handshake is
// done. Copies propagate half-closes, reuse pooled buffers, and splice in
// the kernel when both sides are plain TCP sockets.
package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/lb"
	"github.com/weftmesh/weft/proxy/stats"
)

// HandshakeTimeout bounds a downstream TLS handshake.
const HandshakeTimeout = 10 * time.Second

// Proxy forwards each downstream connection to an endpoint of one cluster.
type Proxy struct {
	// ClusterName is the configured cluster; Cluster is nil when no such
	// cluster is configured, and connections are then closed at once.
	ClusterName string
	Cluster     *cluster.Cluster
	Stats       *stats.Cluster
	// Weighted, when set, splits connections by weight (weighted_clusters)
	// and replaces ClusterName, Cluster and Stats.
	Weighted []Backend
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
	name, c, st := p.pick()
	if st != nil {
		st.TCPConnection()
	}
	if c == nil {
		p.log().Debug("tcp proxy: cluster not found", "cluster", name)
		return
	}
	ep, err := c.Pick(lb.PickInfo{})
	if err != nil {
		p.log().Debug("tcp proxy: no healthy upstream", "cluster", name)
		return
	}
	up, err := c.DialStream(ctx, ep)
	if err != nil {
		p.log().Debug("tcp proxy: upstream connect failed", "cluster", name, "err", err)
		return
	}
	Pipe(down, up)
}

// Pipe copies a to b and b to a until both directions end, then closes both.
// The end of one direction (EOF) half-closes the other side's write end; an
// error in either direction closes both at once.
func Pipe(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		half(b, a)
	}()
	half(a, b)
	<-done
	a.Close()
	b.Close()
}

// half copies src to dst, then half-closes dst.
func half(dst, src net.Conn) {
	if _, err := copyConn(dst, src); err != nil {
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	dst.Close()
}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func copyConn(dst, src net.Conn) (int64, error) {
	if d, s := socket(dst), socket(src); d != nil && s != nil {
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

// socket returns the TCP socket of a plain connection, or nil.
func socket(c net.Conn) *net.TCPConn {
	switch c := c.(type) {
	case *net.TCPConn:
		return c
	case interface{ Socket() *net.TCPConn }:
		return c.Socket()
	}
	return nil
}

// readerOnly and writerOnly hide ReadFrom and WriteTo, whose fallbacks would
// allocate their own buffers.
type readerOnly struct{ io.Reader }
type writerOnly struct{ io.Writer }
