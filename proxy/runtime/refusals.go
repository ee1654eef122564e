package runtime

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/ratelog"
)

// A listener's refused handshakes are logged refusalBurst lines at once,
// then one per refusalEvery, each line counting those it skipped.
const (
	refusalBurst = 20
	refusalEvery = time.Second
)

func newRefusalLog(log *slog.Logger) *ratelog.Limiter {
	return ratelog.New(log, slog.LevelWarn, refusalBurst, refusalEvery)
}

// handshakeFailed logs a downstream TLS handshake that failed. A client that
// hangs up mid-handshake (a TCP health check, a port scan) is only worth a
// debug line; anything else is a refusal (plaintext on a mutual TLS port, a
// certificate of another CA, an expired one, none at all) and is logged
// with its reason.
func (s *socket) handshakeFailed(c net.Conn, err error) {
	if hungUp(err) {
		s.rt.log.Debug("downstream TLS handshake abandoned", "listener", s.addr, "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	s.refusals.Log("downstream TLS handshake refused", "listener", s.addr, "remote", c.RemoteAddr().String(),
		"reason", handshakeReason(err), "err", err)
}

// hungUp says the peer went away rather than failed the handshake.
func hungUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded)
}

// handshakeReason names why a downstream handshake was refused, in the
// words an operator looks for.
func handshakeReason(err error) string {
	var rec tls.RecordHeaderError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &rec):
		return "not TLS: a plaintext client on a mutual TLS port"
	case errors.As(err, &unknown):
		return "client certificate not signed by the mesh CA"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "client certificate expired or not yet valid"
	case errors.As(err, &invalid):
		return "client certificate invalid: " + invalid.Error()
	case strings.Contains(err.Error(), "didn't provide a certificate"):
		return "no client certificate"
	}
	return err.Error()
}
