package hcm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/tcp"
)

// upgrade forwards an HTTP/1.1 upgrade request (WebSocket) over a dedicated
// upstream connection and, when the upstream switches protocols, splices the
// two connections until both sides are done. It returns the status the
// upstream answered.
func (m *ConnectionManager) upgrade(ex *exchange, w http.ResponseWriter, r *http.Request, u *Upstream, ep *cluster.Endpoint) int {
	ctx := r.Context()
	c := u.Cluster
	up, err := c.DialUpgrade(ctx, ep)
	if err != nil {
		return ex.upstreamFailure(ctx, w, r, err)
	}
	ep.RequestStarted()
	failed := true
	defer func() { ep.RequestFinished(failed) }()
	closeUp := true
	defer func() {
		if closeUp {
			up.Close()
		}
	}()

	out := r.Clone(ctx)
	out.RequestURI = ""
	out.Header = m.requestHeader(r)
	out.Header["Connection"] = []string{"Upgrade"}
	out.Header["Upgrade"] = r.Header["Upgrade"]
	if u.MTLS && m.peerHeader != nil {
		out.Header[PeerHeader] = m.peerHeader
	}
	out.Body = nil
	out.ContentLength = 0
	stop := context.AfterFunc(ctx, func() { up.Close() })
	defer stop()
	sent := time.Now()
	if err := out.Write(up); err != nil {
		return ex.upstreamFailure(ctx, w, r, err)
	}
	br := bufio.NewReader(up)
	res, err := http.ReadResponse(br, out)
	if err != nil {
		return ex.upstreamFailure(ctx, w, r, err)
	}
	ex.rec.UpstreamLatency = time.Since(sent)
	if res.StatusCode != http.StatusSwitchingProtocols {
		// Refused: relay the answer as an ordinary response.
		defer res.Body.Close()
		copyResponseHeader(w.Header(), res.Header)
		w.WriteHeader(res.StatusCode)
		_ = copyBody(w, res.Body, nil)
		failed = res.StatusCode >= 500
		return res.StatusCode
	}
	if !stop() {
		return statusClientClosed
	}

	down, dbuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return ex.localReply(w, http.StatusInternalServerError, errUpgradeHijack)
	}
	if err := writeSwitching(dbuf.Writer, res); err != nil {
		down.Close()
		return http.StatusSwitchingProtocols
	}
	// Bytes either side sent right behind the handshake sit in the readers.
	if err := drainBuffered(up, dbuf.Reader); err != nil {
		down.Close()
		return http.StatusSwitchingProtocols
	}
	if err := drainBuffered(down, br); err != nil {
		down.Close()
		return http.StatusSwitchingProtocols
	}
	failed = false
	closeUp = false
	sessions := tcp.SessionsFrom(ctx)
	if sessions != nil {
		done, ok := sessions.Add(down, up)
		if !ok {
			down.Close()
			up.Close()
			return http.StatusSwitchingProtocols
		}
		defer done()
	}
	// The spliced bytes count as the exchange's bodies.
	ex.rec.RequestBytes, ex.rec.ResponseBytes = tcp.PipeCount(down, up)
	return http.StatusSwitchingProtocols
}

// writeSwitching writes a 101 response head with the upstream's headers,
// including the Upgrade and Connection headers that make it a switch.
func writeSwitching(w *bufio.Writer, res *http.Response) error {
	fmt.Fprintf(w, "HTTP/1.1 %s %s\r\n", strconv.Itoa(res.StatusCode), http.StatusText(res.StatusCode))
	if err := res.Header.Write(w); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\r\n"); err != nil {
		return err
	}
	return w.Flush()
}

// drainBuffered writes what r already buffered to dst.
func drainBuffered(dst net.Conn, r *bufio.Reader) error {
	n := r.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := r.Peek(n)
	_, err := dst.Write(b)
	return err
}
