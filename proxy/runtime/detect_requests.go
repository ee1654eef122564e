package runtime

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"

	"github.com/weftmesh/weft/proxy/cluster"
)

// The HTTP requests of a connection whose chain was chosen by detection
// (detect_chains.go): each is served by that chain of the configuration
// current at its arrival, and carries the connection's original
// destination to the clusters it is routed to.

// detectedConn carries the name of the chain chosen for a connection to
// the socket's HTTP server (requestChain), and the connection's original
// destination, if it was redirected, to the clusters its requests are
// routed to (an ORIGINAL_DST cluster sends them there).
type detectedConn struct {
	net.Conn
	chain string
	// dst is the destination the chain was chosen by.
	dst         netip.AddrPort
	originalDst netip.AddrPort
}

// NetConn is the connection underneath, as tls.Conn names it.
func (c *detectedConn) NetConn() net.Conn { return c.Conn }

// detectedChainKey is the request context key of a detectedChain.
type detectedChainKey struct{}

// detectedChain is what a request knows of its connection's detection: the
// chain chosen and the destination it was chosen by.
type detectedChain struct {
	name string
	dst  netip.AddrPort
}

// connContext is the socket's HTTP server's ConnContext: it remembers the
// chain a detected connection was given, and its original destination.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if cc, ok := c.(*cluster.CoalescingConn); ok {
		c = cc.Conn
	}
	dc, ok := c.(*detectedConn)
	if !ok {
		return ctx
	}
	if dc.originalDst.IsValid() {
		ctx = cluster.WithOriginalDestination(ctx, dc.originalDst)
	}
	return context.WithValue(ctx, detectedChainKey{}, detectedChain{name: dc.chain, dst: dc.dst})
}

// requestChain is the chain that serves r, in the configuration current
// at its arrival, or nil when none does any more.
func (s *socket) requestChain(r *http.Request) *filterChain {
	lc := s.current.Load()
	dc, detected := r.Context().Value(detectedChainKey{}).(detectedChain)
	switch {
	case detected && lc.detect != nil:
		fc := lc.detect.chainNamed(dc.name)
		if fc == nil {
			// The chain is gone (a STRICT listener became PERMISSIVE,
			// whose chains have other names): choose again, by what the
			// request says of its connection.
			fc = lc.detect.pick(dc.dst, requestDetection(r))
		}
		if fc == nil || fc.http == nil || (fc.tls != nil) != (r.TLS != nil) {
			return nil
		}
		return fc
	case detected || lc.detect != nil:
		// The listener changed between detecting and not.
		return nil
	}
	return lc.chainFor(r.TLS != nil)
}

// requestDetection is what detection would have said of the connection a
// request came on: its TLS server name and ALPN, or its HTTP version.
func requestDetection(r *http.Request) detection {
	if r.TLS != nil {
		d := detection{transport: transportTLS, serverName: r.TLS.ServerName}
		if p := r.TLS.NegotiatedProtocol; p != "" {
			d.protocols = []string{p}
		}
		return d
	}
	p := protoHTTP11
	switch {
	case r.ProtoMajor == 2:
		p = protoH2C
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		p = protoHTTP10
	}
	return detection{transport: transportRaw, protocols: []string{p}}
}
