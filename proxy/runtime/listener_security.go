package runtime

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"slices"
	"time"

	"github.com/weftmesh/weft/proxy/filter/rbac"
	"github.com/weftmesh/weft/proxy/tcp"
)

// tlsRecordHandshake is the first byte of a TLS connection: the record
// type of its ClientHello.
const tlsRecordHandshake = 0x16

// use makes lc the socket's configuration. When the listener stops
// accepting plaintext (PERMISSIVE became STRICT), the plaintext TCP
// sessions it let in are closed; a plaintext HTTP connection is refused at
// its next request (ServeHTTP).
func (s *socket) use(lc *listenerConfig) {
	old := s.current.Swap(lc)
	if old != nil && old.permissive() && !lc.permissive() && lc.terminatesTLS() {
		s.plain.Swap(tcp.NewSessions()).CloseAll()
	}
}

// permissive reports whether the listener serves plaintext beside mutual
// TLS: a PERMISSIVE pair of chains, or plaintext chains among those a
// chain selector picks from (a transparent inbound listener's).
func (lc *listenerConfig) permissive() bool {
	if lc.plaintext != nil {
		return true
	}
	return lc.detect != nil && slices.ContainsFunc(lc.detect.chains, func(c *filterChain) bool { return c.permissive })
}

// terminatesTLS reports whether the listener has a chain that terminates TLS.
func (lc *listenerConfig) terminatesTLS() bool {
	if lc.detect != nil {
		return slices.ContainsFunc(lc.detect.chains, func(c *filterChain) bool { return c.tls != nil })
	}
	return lc.tls != nil
}

// inspect chooses between a listener's TLS and plaintext chains by the
// connection's first byte, which it peeks at without reading, as Envoy's
// tls_inspector does, so that the chain sees the connection whole (and a
// plain socket keeps splicing). A client that sends nothing in time (a
// server-first protocol) is served as plaintext when the listener says to
// continue, and refused otherwise.
func (s *socket) inspect(lc *listenerConfig, c net.Conn) {
	s.rt.bg.Add(1)
	go func() {
		defer s.rt.bg.Done()
		_ = c.SetReadDeadline(time.Now().Add(lc.inspectTimeout))
		// A socket that is force-closed ends the wait at once.
		stop := context.AfterFunc(s.ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
		first, err := peekByte(c)
		stopped := stop()
		_ = c.SetReadDeadline(time.Time{})
		if !stopped {
			c.Close()
			return
		}
		fc := &lc.filterChain
		switch {
		case err == nil && first != tlsRecordHandshake:
			fc = lc.plaintext
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && lc.inspectContinue:
			s.rt.log.Info("TLS inspection timed out: serving the connection as plaintext",
				"listener", s.addr, "remote", c.RemoteAddr().String(), "timeout", lc.inspectTimeout)
			fc = lc.plaintext
		default:
			s.rt.log.Debug("TLS inspection failed", "listener", s.addr, "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		s.serve(fc, c)
	}()
}

// authorizeHTTP runs a plaintext HTTP chain's network RBAC before its
// connection manager sees the connection.
func (s *socket) authorizeHTTP(fc *filterChain, c net.Conn) {
	s.rt.bg.Add(1)
	go func() {
		defer s.rt.bg.Done()
		if !s.allowConn(fc, c) {
			c.Close()
			return
		}
		if !s.httpConn.deliver(c) {
			c.Close()
		}
	}()
}

// handshakeAndAllow completes a TLS handshake, if c is TLS, and runs the
// chain's network RBAC on the connection. denied is the refusal's reason
// when RBAC refused it ("" when the handshake failed).
func (s *socket) handshakeAndAllow(fc *filterChain, c net.Conn) (ok bool, denied string) {
	if tc, ok := c.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(s.ctx, tcp.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.handshakeFailed(c, err)
			return false, ""
		}
	}
	return s.authorize(fc, c)
}

// allowConn runs the chain's network RBAC filters, in order, on a
// connection whose handshake (if any) is done; a refusal is logged with
// the policy that refused.
func (s *socket) allowConn(fc *filterChain, c net.Conn) bool {
	ok, _ := s.authorize(fc, c)
	return ok
}

// authorize is allowConn, and returns the refusal's reason.
func (s *socket) authorize(fc *filterChain, c net.Conn) (ok bool, denied string) {
	if len(fc.rbac) == 0 {
		return true, ""
	}
	req := rbac.Request{}
	if tc, ok := c.(*tls.Conn); ok {
		st := tc.ConnectionState()
		if len(st.PeerCertificates) > 0 {
			req.Authenticated = true
			if uris := st.PeerCertificates[0].URIs; len(uris) > 0 {
				req.Peer = uris[0].String()
			}
		}
	}
	for _, e := range fc.rbac {
		if ok, deniedBy, reply := e.Allowed(&req); !ok {
			s.rt.log.Info("connection refused", "listener", s.addr, "chain", fc.name, "remote", c.RemoteAddr().String(),
				"peer", req.Peer, "denied_by", deniedBy, "reason", reply.Reason)
			return false, reply.Reason
		}
	}
	return true, ""
}
