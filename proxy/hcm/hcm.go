// Package hcm is the HTTP connection manager: Envoy's network filter of the
// same name with its router. It serves requests from a listener's HTTP
// server (HTTP/1.1, h2 over TLS, h2c), routes them through a route.Table,
// picks an endpoint of the route's cluster and forwards the request over the
// cluster's pooled connections, streaming bodies and trailers both ways.
// Upgrades (WebSocket) get a dedicated upstream connection and are spliced.
// HTTP filters run before the router; the router applies the route's
// weighted split, header edits, hash key, retries (replaying bodies up to
// 64 KiB) and mirrors.
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
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/ratelog"
	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/lb"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/stats"
)

// Upstream is what a route resolves to.
type Upstream struct {
	// Name is the cluster's name; Cluster is nil when it is not configured.
	Name    string
	Cluster *cluster.Cluster
	// Destination is the workload the cluster leads to: its service and
	// namespace (the version is the picked endpoint's). MTLS says the
	// cluster's connections are mutual TLS.
	Destination observe.Peer
	MTLS        bool

	shadows shadowSlots
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
	// Direction is the listener's side of the proxy, Listener its name and
	// Local this proxy's own workload: the destination of inbound requests,
	// the source of outbound ones.
	Direction observe.Direction
	Listener  string
	Local     observe.Peer
	// Observers see every request, in order (metrics, tap, logs, tracing).
	Observers []observe.Observer
	// Filters run in order on every routed request, before the router.
	Filters []Filter
	// Retries counts retries; nil counts nothing.
	Retries *stats.Retries
	Log     *slog.Logger
}

// ConnectionManager serves HTTP requests for a listener.
type ConnectionManager struct {
	cfg Config
	// refusals logs the requests filters refuse.
	refusals *ratelog.Limiter
	// shadows are the mirrored requests in flight.
	shadows sync.WaitGroup
	// peers caches the identities of client certificates; inbound only.
	peers *peerCache
	// peerHeader is the PeerHeader value sent over mutual TLS, or nil.
	peerHeader []string
}

// WaitShadows waits for the mirrored requests in flight; each is bounded by
// its route's timeout.
func (m *ConnectionManager) WaitShadows() { m.shadows.Wait() }

// New returns a connection manager for cfg.
func New(cfg Config) *ConnectionManager {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	m := &ConnectionManager{cfg: cfg, refusals: ratelog.New(cfg.Log, slog.LevelInfo, refusalBurst, refusalEvery)}
	if v := peerHeaderValue(cfg.Local); v != "" && cfg.Direction == observe.Outbound {
		m.peerHeader = []string{v}
	}
	if cfg.Direction == observe.Inbound {
		m.peers = new(peerCache)
	}
	return m
}

// A flood of refused requests is logged refusalBurst lines at once, then
// one per refusalEvery.
const (
	refusalBurst = 50
	refusalEvery = 100 * time.Millisecond
)

// Routes returns the route table in use, or nil.
func (m *ConnectionManager) Routes() *route.Table[*Upstream] { return m.cfg.Routes }

// ServeHTTP routes and forwards one request, and shows it to the
// observers.
func (m *ConnectionManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := exchanges.Get().(*exchange)
	rec := &ex.rec
	rec.Direction, rec.Listener, rec.Start, rec.Request = m.cfg.Direction, m.cfg.Listener, time.Now(), r
	m.identify(rec, r)
	if r.Body != nil && r.Body != http.NoBody {
		ex.body.rc = r.Body
		r.Body = &ex.body
	}
	ex.w.ResponseWriter = w
	for _, o := range m.cfg.Observers {
		o.Start(rec)
	}
	code, aborted := m.route(ex, &ex.w, r)
	m.finish(ex, r, code)
	if aborted {
		// Headers are gone: abort the downstream stream so that the client
		// sees a reset rather than a truncated success.
		panic(http.ErrAbortHandler)
	}
	ex.release(w)
}

// identify fills in the workloads at both ends that are known before
// routing: the peer certificate's on the inbound side, this proxy's own.
// The PeerHeader is taken off the request here, so that neither an app nor
// a caller can forge it.
func (m *ConnectionManager) identify(rec *observe.Request, r *http.Request) {
	claimed := r.Header[PeerHeader]
	if claimed != nil {
		delete(r.Header, PeerHeader)
	}
	if m.cfg.Direction != observe.Inbound {
		rec.Source = m.cfg.Local
		return
	}
	rec.Destination = m.cfg.Local
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return
	}
	rec.MTLS = true
	rec.Source = m.peers.peer(r.TLS.PeerCertificates[0])
	if len(claimed) > 0 {
		rec.Source.Version = peerVersion(claimed[0], rec.Source)
	}
}

// finish completes the record once the response has ended and hands it to
// the observers.
func (m *ConnectionManager) finish(ex *exchange, r *http.Request, code int) {
	rec := &ex.rec
	rec.Status = code
	if code == statusClientClosed || r.Context().Err() != nil {
		rec.Flags |= observe.DownstreamClosed
	}
	h := ex.w.Header()
	rec.ResponseHeader = h
	if v := h["Grpc-Status"]; len(v) > 0 {
		rec.GRPCStatus = v[0]
	} else if v := h[http.TrailerPrefix+"Grpc-Status"]; len(v) > 0 {
		rec.GRPCStatus = v[0]
	}
	rec.RequestBytes += ex.body.n.Load()
	rec.ResponseBytes += ex.w.n
	rec.Duration = time.Since(rec.Start)
	for _, o := range m.cfg.Observers {
		o.Done(rec)
	}
}

// route matches the request and serves it.
func (m *ConnectionManager) route(ex *exchange, w http.ResponseWriter, r *http.Request) (code int, aborted bool) {
	var rt *route.Route[*Upstream]
	if m.cfg.Routes != nil {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		rt = m.cfg.Routes.MatchRequest(&route.Request{Host: r.Host, Path: requestPath(r), Method: r.Method, Scheme: scheme, Header: r.Header})
	}
	if rt == nil {
		ex.rec.Flags |= observe.NoRoute
		return ex.localReply(w, http.StatusNotFound, errRouteNotFound), false
	}
	if rt.Direct != nil {
		return m.direct(ex, w, r, rt), false
	}
	if rt.Redirect != nil {
		return m.redirect(ex, w, r, rt), false
	}
	_, up := rt.Pick()
	ex.rec.Route, ex.rec.Cluster = rt.Name, up.Name
	if m.cfg.Direction != observe.Inbound {
		ex.rec.Destination, ex.rec.MTLS = up.Destination, up.MTLS
	} else if ex.rec.Destination.Service == "" {
		// A proxy that was not told its workload: the inbound cluster says.
		ex.rec.Destination = up.Destination
	}
	return m.serve(ex, w, r, rt, up)
}

func (m *ConnectionManager) serve(ex *exchange, w http.ResponseWriter, r *http.Request, rt *route.Route[*Upstream], up *Upstream) (code int, aborted bool) {
	if len(m.cfg.Filters) > 0 {
		if code, next := m.runFilters(ex, w, r, rt); !next {
			return code, false
		}
	}
	if up.Cluster == nil {
		return ex.localReply(w, rt.ClusterNotFoundCode, errClusterNotFound), false
	}
	var info lb.PickInfo
	var setCookie string
	if len(rt.HashPolicy) > 0 {
		info.Hash, _, setCookie = requestHash(rt.HashPolicy, r)
	}
	ep, err := up.Cluster.PickFor(r.Context(), info)
	if err != nil {
		ex.rec.Flags |= observe.NoHealthyUpstream
		return ex.localReply(w, http.StatusServiceUnavailable, errNoHealthyUpstream), false
	}
	if r.Method == http.MethodConnect {
		// Tunnels are not configured: refused like an upgrade that is not enabled.
		return ex.localReply(w, http.StatusForbidden, errUpgradeFailed), false
	}
	if typ, ok := upgradeType(r); ok {
		if !m.upgradeEnabled(rt, typ) {
			return ex.localReply(w, http.StatusForbidden, errUpgradeFailed), false
		}
		ex.attempt(ep, m.cfg.Direction)
		ex.held = true
		return m.upgrade(ex, w, r, up, ep), false
	}
	if setCookie != "" {
		w.Header().Add("Set-Cookie", setCookie)
	}
	return m.forward(ex, w, r, rt, up, ep, info)
}

// attempt records that the request is sent to ep.
func (ex *exchange) attempt(ep *cluster.Endpoint, direction observe.Direction) {
	ex.rec.Attempts++
	ex.rec.Upstream = ep.Address()
	if direction != observe.Inbound {
		ex.rec.Destination.Version = ep.Version()
	}
}

// localReply sends a locally generated response and records its reason.
func (ex *exchange) localReply(w http.ResponseWriter, code int, e localError) int {
	ex.rec.Reason = e.reason[0]
	return localReply(w, code, e)
}

func (m *ConnectionManager) upgradeEnabled(rt *route.Route[*Upstream], typ string) bool {
	if on, ok := rt.Upgrades[typ]; ok {
		return on
	}
	return m.cfg.Upgrades[typ]
}

// forward sends r upstream, retrying as the route's policy allows, and
// streams the final response back. It returns the status code sent
// downstream and whether the upstream broke off the response after its
// headers were sent downstream.
func (m *ConnectionManager) forward(ex *exchange, w http.ResponseWriter, r *http.Request, rt *route.Route[*Upstream], up *Upstream, ep *cluster.Endpoint, info lb.PickInfo) (code int, aborted bool) {
	c := up.Cluster
	ex.req, ex.url = *r, *r.URL
	out := &ex.req
	out.URL = &ex.url
	out.RequestURI = ""
	out.Close = false
	// The header is rewritten in place: nothing reads r's own after this.
	m.rewriteRequestHeader(out.Header, r.TLS != nil)
	if up.MTLS && m.peerHeader != nil {
		out.Header[PeerHeader] = m.peerHeader
	}
	for _, e := range rt.RequestEdits {
		e.Apply(out.Header)
	}
	ctx := r.Context()
	if rt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
		defer cancel()
	}

	retry := rt.Retry
	if retry != nil && retry.NumRetries == 0 {
		retry = nil
	}
	hasBody := r.Body != nil && r.Body != http.NoBody
	var body *replayBody
	if hasBody && (retry != nil || len(rt.Mirrors) > 0) {
		body = newReplayBody(r.Body)
	}
	mirrored := len(rt.Mirrors) == 0
	mirror := func() {
		if mirrored {
			return
		}
		if !hasBody {
			mirrored = true
			m.mirror(rt, out, nil)
		} else if b, ok := body.complete(); ok {
			mirrored = true
			m.mirror(rt, out, b)
		}
	}
	defer mirror()

	var releaseRetry func()
	defer func() {
		if releaseRetry != nil {
			releaseRetry()
		}
	}()
	for attempt := 0; ; attempt++ {
		tryCtx := ctx
		var cancelTry context.CancelFunc = func() {}
		if retry != nil && retry.PerTry > 0 {
			tryCtx, cancelTry = context.WithTimeout(ctx, retry.PerTry)
		}
		// Each attempt that may be retried has its own request: the
		// transport of an abandoned attempt may still read its fields.
		req := out
		if retry != nil || tryCtx != r.Context() {
			req = out.WithContext(tryCtx)
		}
		if body != nil {
			req.Body = body.attempt()
		}
		ex.attempt(ep, m.cfg.Direction)
		ep.RequestStarted()
		sent := time.Now()
		res, err := c.RoundTrip(req, ep)
		if err == nil {
			ex.rec.UpstreamLatency = time.Since(sent)
		}
		if !cluster.Released(res) {
			ex.held = true
		}
		mirror()
		canRetry := retry != nil && attempt < retry.NumRetries && r.Context().Err() == nil && ctx.Err() == nil &&
			(body == nil || body.replayable())
		if canRetry {
			if err != nil {
				perTryTimeout := errors.Is(tryCtx.Err(), context.DeadlineExceeded)
				canRetry = perTryTimeout && retry.RetriableStatus(http.StatusGatewayTimeout, "") ||
					!perTryTimeout && retry.RetriableFailure(cluster.IsConnectError(err))
			} else {
				canRetry = res.Header.Get("X-Weft-Overloaded") == "" &&
					retry.RetriableStatus(res.StatusCode, grpcStatus(res.Header))
			}
		}
		var next *cluster.Endpoint
		var release func()
		if canRetry {
			next, _ = c.PickFor(r.Context(), info)
			ok := false
			if next != nil {
				release, ok = acquireRetry(c)
			}
			canRetry = ok
		}
		if !canRetry {
			if release != nil {
				release()
			}
			code, failed, aborted := m.respond(ex, w, r, rt, c, ep, tryCtx, res, err)
			ep.RequestFinished(failed || aborted)
			cancelTry()
			return code, aborted
		}
		// Abandon this attempt and go again after a back-off.
		if err == nil {
			res.Body.Close()
			cluster.Recycle(res)
		}
		if a, ok := req.Body.(*attemptBody); ok {
			a.Close()
		}
		ep.RequestFinished(true)
		cancelTry()
		if releaseRetry != nil {
			releaseRetry()
		}
		releaseRetry = release
		ex.rec.Flags |= observe.Retried
		m.cfg.Retries.Retry(c.Name())
		if d := retry.BackOff(attempt); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ex.upstreamFailure(ctx, w, r, ctx.Err()), false
			}
		}
		ep = next
	}
}

// respond relays an attempt's outcome downstream: the upstream's response,
// or a local reply for its error.
func (m *ConnectionManager) respond(ex *exchange, w http.ResponseWriter, r *http.Request, rt *route.Route[*Upstream], c *cluster.Cluster, ep *cluster.Endpoint, ctx context.Context, res *http.Response, err error) (code int, failed, aborted bool) {
	h := w.Header()
	if err != nil {
		for _, e := range rt.ResponseEdits {
			e.Apply(h)
		}
		return ex.upstreamFailure(ctx, w, r, err), true, false
	}
	defer func() {
		res.Body.Close()
		cluster.Recycle(res)
	}()
	if res.Header[cluster.OverloadedHeader] != nil {
		// A circuit breaker's refusal: this proxy's, or relayed from the
		// next one's.
		ex.rec.Flags |= observe.Overflow
		ex.rec.Reason = "upstream_overflow"
	}

	copyResponseHeader(h, res.Header)
	for _, e := range rt.ResponseEdits {
		e.Apply(h)
	}
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
			ex.rec.Flags |= observe.UpstreamReset
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

// grpcStatus returns the grpc-status of a trailers-only response, or "".
func grpcStatus(h http.Header) string {
	if v := h["Grpc-Status"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// retryAdmitter is the cluster's retry admission (max_retries and retry
// budget).
type retryAdmitter interface {
	AcquireRetry() (release func(), ok bool)
}

// acquireRetry asks the cluster to admit a retry; a cluster without
// admission control admits every retry.
func acquireRetry(c any) (release func(), ok bool) {
	if a, is := c.(retryAdmitter); is {
		return a.AcquireRetry()
	}
	return func() {}, true
}

// upstreamFailure answers a request whose upstream exchange failed before
// any response header arrived.
func (ex *exchange) upstreamFailure(ctx context.Context, w http.ResponseWriter, r *http.Request, err error) int {
	switch {
	case r.Context().Err() != nil:
		// The client is gone; nothing can be sent.
		ex.rec.Flags |= observe.DownstreamClosed
		return statusClientClosed
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		ex.rec.Flags |= observe.UpstreamTimeout
		return ex.localReply(w, http.StatusGatewayTimeout, errUpstreamTimeout)
	case cluster.IsConnectError(err):
		ex.rec.Flags |= observe.UpstreamConnectFailure
		return ex.localReply(w, http.StatusServiceUnavailable, errConnectFailure)
	default:
		ex.rec.Flags |= observe.UpstreamReset
		return ex.localReply(w, http.StatusServiceUnavailable, errUpstreamReset)
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
