package hcm

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/proxy/lb"
	"github.com/weftmesh/weft/proxy/route"
)

// maxShadowsInFlight bounds the mirrored requests in flight per cluster;
// beyond it mirrors are dropped rather than queued.
const maxShadowsInFlight = 32

// defaultShadowTimeout bounds a mirrored request when its route has no
// timeout, so that a stuck shadow does not hold a slot for ever.
const defaultShadowTimeout = 15 * time.Second

// shadowSlots counts the mirrored requests in flight to one cluster.
type shadowSlots struct{ n atomic.Int32 }

func (s *shadowSlots) acquire() bool {
	if s.n.Add(1) > maxShadowsInFlight {
		s.n.Add(-1)
		return false
	}
	return true
}

func (s *shadowSlots) release() { s.n.Add(-1) }

// mirror sends a copy of a request to each of the route's mirror clusters
// that samples it, in the background. out is the upstream request as sent
// (its header is copied); body is the whole request body. Nothing here
// waits on the shadow or reports its result to the caller.
func (m *ConnectionManager) mirror(rt *route.Route[*Upstream], out *http.Request, body []byte) {
	for i := range rt.Mirrors {
		mr := &rt.Mirrors[i]
		up := mr.Target
		if up == nil || up.Cluster == nil || !mr.Share.Sample() {
			continue
		}
		if !up.shadows.acquire() {
			continue
		}
		u := *out.URL
		req := &http.Request{
			Method:        out.Method,
			URL:           &u,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        out.Header.Clone(),
			Host:          shadowHost(out.Host),
			ContentLength: int64(len(body)),
		}
		if len(body) > 0 {
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		timeout := rt.Timeout
		if timeout <= 0 {
			timeout = defaultShadowTimeout
		}
		m.shadows.Add(1)
		go func() {
			defer m.shadows.Done()
			defer up.shadows.release()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			ep, err := up.Cluster.Pick(lb.PickInfo{})
			if err != nil {
				return
			}
			ep.RequestStarted()
			res, err := up.Cluster.RoundTrip(req.WithContext(ctx), ep)
			if err != nil {
				ep.RequestFinished(true)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			ep.RequestFinished(res.StatusCode >= 500)
		}()
	}
}

// shadowHost appends "-shadow" to a host before its port, as Envoy does:
// "catalog:8080" becomes "catalog-shadow:8080".
func shadowHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		return host[:i] + "-shadow" + host[i:]
	}
	return host + "-shadow"
}
