// Package hcm is the HTTP connection manager: Envoy's network filter of the
// same name with its router. It serves requests from a listener's HTTP
// server (HTTP/1.1, h2 over TLS, h2c), routes them through a route.Table,
// picks an endpoint of the route's cluster and forwards the request over the
// cluster's pooled connections, streaming bodies and trailers both ways.
// Upgrades (WebSocket) get a dedicated upstream connection and are spliced.
//
// Locally generated errors follow Envoy: 404 without a route, 503 "no
// healthy upstream" without an endpoint, 503 when the upstream cannot be
// reached, 504 on a route timeout; each carries an x-weft-error header with
// a short reason.
package hcm

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/lb"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/stats"
)

// Upstream is what a route resolves to.
type Upstream struct {
	// Name is the cluster's name; Cluster is nil when it is not configured.
	Name    string
	Cluster *cluster.Cluster
	// Stats are the cluster's metrics in the connection manager's direction.
	Stats *stats.Cluster
}

// Config is one compiled connection manager.
type Config struct {
	// Routes is nil until the RouteConfiguration named RouteName arrives;
	// every request is a 404 meanwhile.
	Routes    *route.Table[*Upstream]
	RouteName string
	// Upgrades enables upgrade types (lower case, "websocket") for every route.
	Upgrades map[string]bool
	// RequestID adds an x-request-id to requests that have none.
	RequestID bool
	// NoRoute receives the metrics of requests that matched no route.
	NoRoute *stats.Cluster
	Log     *slog.Logger
}

// ConnectionManager serves HTTP requests for a listener.
type ConnectionManager struct {
	cfg Config
}

// New returns a connection manager for cfg.
func New(cfg Config) *ConnectionManager {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &ConnectionManager{cfg: cfg}
}

// Routes returns the route table in use, or nil.
func (m *ConnectionManager) Routes() *route.Table[*Upstream] { return m.cfg.Routes }

// ServeHTTP routes and forwards one request.
func (m *ConnectionManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var rt *route.Route[*Upstream]
	if m.cfg.Routes != nil {
		rt = m.cfg.Routes.Match(r.Host, requestPath(r))
	}
	if rt == nil {
		localReply(w, http.StatusNotFound, errRouteNotFound)
		m.cfg.NoRoute.Request(http.StatusNotFound, time.Since(start))
		return
	}
	up := rt.Target
	code, aborted := m.serve(w, r, rt, up)
	up.Stats.Request(code, time.Since(start))
	if aborted {
		// Headers are gone: abort the downstream stream so that the client
		// sees a reset rather than a truncated success.
		panic(http.ErrAbortHandler)
	}
}

func (m *ConnectionManager) serve(w http.ResponseWriter, r *http.Request, rt *route.Route[*Upstream], up *Upstream) (code int, aborted bool) {
	if up.Cluster == nil {
		return localReply(w, rt.ClusterNotFoundCode, errClusterNotFound), false
	}
	ep, err := up.Cluster.Pick(lb.PickInfo{})
	if err != nil {
		return localReply(w, http.StatusServiceUnavailable, errNoHealthyUpstream), false
	}
	if r.Method == http.MethodConnect {
		// Tunnels are not configured: refused like an upgrade that is not enabled.
		return localReply(w, http.StatusForbidden, errUpgradeFailed), false
	}
	if typ, ok := upgradeType(r); ok {
		if !m.upgradeEnabled(rt, typ) {
			return localReply(w, http.StatusForbidden, errUpgradeFailed), false
		}
		return m.upgrade(w, r, up.Cluster, ep), false
	}
	ep.RequestStarted()
	code, failed, aborted := m.forward(w, r, rt, up.Cluster, ep)
	ep.RequestFinished(failed || aborted)
	return code, aborted
}

func (m *ConnectionManager) upgradeEnabled(rt *route.Route[*Upstream], typ string) bool {
	if on, ok := rt.Upgrades[typ]; ok {
		return on
	}
	return m.cfg.Upgrades[typ]
}

// exchange is the state of one forwarded request, allocated once.
type exchange struct {
	req http.Request
	url url.URL
}

// forward sends r upstream and streams the response back. It returns the
// status code sent downstream, whether the exchange failed, and whether the
// upstream broke off the response after its headers were sent downstream.
func (m *ConnectionManager) forward(w http.ResponseWriter, r *http.Request, rt *route.Route[*Upstream], c *cluster.Cluster, ep *cluster.Endpoint) (code int, failed, aborted bool) {
	ex := &exchange{req: *r, url: *r.URL}
	out := &ex.req
	out.URL = &ex.url
	out.RequestURI = ""
	out.Close = false
	// The header is rewritten in place: nothing reads r's own after this.
	m.rewriteRequestHeader(out.Header, r.TLS != nil)
	ctx := r.Context()
	if rt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
		defer cancel()
		out = out.WithContext(ctx)
	}

	res, err := c.RoundTrip(out, ep)
	if err != nil {
		return upstreamFailure(ctx, w, r, err), true, false
	}
	defer res.Body.Close()

	h := w.Header()
	copyResponseHeader(h, res.Header)
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		h["Trailer"] = keys
	}
	w.WriteHeader(res.StatusCode)
	// A response of unknown length is a stream (gRPC, server-sent events,
	// chunked progress): every piece goes downstream as soon as it arrives.
	streaming := res.ContentLength < 0
	var flusher http.Flusher
	if streaming {
		flusher, _ = w.(http.Flusher)
		if flusher != nil {
			flusher.Flush()
		}
	}
	if err := copyBody(w, res.Body, flusher); err != nil {
		if r.Context().Err() == nil {
			m.cfg.Log.Debug("upstream response aborted", "cluster", c.Name(), "endpoint", ep.Address(), "err", err)
		}
		return res.StatusCode, true, true
	}
	if len(res.Trailer) > 0 {
		if len(res.Trailer) == announced {
			for k, vv := range res.Trailer {
				h[k] = vv
			}
		} else {
			for k, vv := range res.Trailer {
				h[http.TrailerPrefix+k] = vv
			}
		}
	}
	return res.StatusCode, res.StatusCode >= 500, false
}

// upstreamFailure answers a request whose upstream exchange failed before
// any response header arrived.
func upstreamFailure(ctx context.Context, w http.ResponseWriter, r *http.Request, err error) int {
	switch {
	case r.Context().Err() != nil:
		// The client is gone; nothing can be sent.
		return statusClientClosed
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return localReply(w, http.StatusGatewayTimeout, errUpstreamTimeout)
	case cluster.IsConnectError(err):
		return localReply(w, http.StatusServiceUnavailable, errConnectFailure)
	default:
		return localReply(w, http.StatusServiceUnavailable, errUpstreamReset)
	}
}

// statusClientClosed is recorded for requests whose client went away before
// a response (nginx's 499).
const statusClientClosed = 499

var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody copies an upstream body downstream, flushing after each read
// when flusher is set. It returns the upstream's read error, if any; a
// downstream write error ends the copy silently (the client left).
func copyBody(w io.Writer, body io.Reader, flusher http.Flusher) error {
	bp := bodyBuffers.Get().(*[]byte)
	defer bodyBuffers.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// requestPath returns the request target in origin form (path and query).
// Requests to the explicit HTTP proxy arrive in absolute form.
func requestPath(r *http.Request) string {
	p := r.RequestURI
	if len(p) > 0 && p[0] == '/' {
		return p
	}
	if i := strings.Index(p, "://"); i >= 0 {
		rest := p[i+3:]
		if j := strings.IndexAny(rest, "/?"); j >= 0 {
			if rest[j] == '/' {
				return rest[j:]
			}
			return "/" + rest[j:]
		}
		return "/"
	}
	return r.URL.RequestURI()
}

var _ http.Handler = (*ConnectionManager)(nil)
