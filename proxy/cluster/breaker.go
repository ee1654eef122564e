package cluster

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
)

// Envoy's defaults for a priority's circuit-breaker thresholds.
const (
	DefaultMaxRequests         = 1024
	DefaultMaxRetries          = 3
	DefaultRetryBudgetPercent  = 20.0
	DefaultMinRetryConcurrency = 3
)

// OverloadedHeader marks the local 503 of a request a circuit breaker refused.
const OverloadedHeader = "X-Weft-Overloaded"

// Kinds of OverflowError, the "kind" label of weft_upstream_overflow_total.
const (
	OverflowRequests    = "requests"
	OverflowRetries     = "retries"
	OverflowPending     = "pending"
	OverflowConnections = "connections"
)

// Thresholds are a cluster's circuit-breaker limits (Envoy's
// circuit_breakers.thresholds for the default priority), used as they are:
// zero admits nothing. DefaultThresholds are Envoy's defaults.
type Thresholds struct {
	// MaxRequests bounds the requests in flight to the whole cluster.
	MaxRequests int64
	// MaxRetries bounds the retries in flight; ignored when Budget is set.
	MaxRetries int64
	// Budget, when set, admits retries in proportion to active requests.
	Budget *RetryBudget
	// MaxPendingRequests, when LimitPending, bounds the requests waiting
	// for a connection; a request over it is answered at once.
	MaxPendingRequests int64
	LimitPending       bool
}

// RetryBudget admits a retry while the retries in flight stay below
// max(MinConcurrency, Percent% of the requests in flight).
type RetryBudget struct {
	Percent        float64
	MinConcurrency int64
}

// DefaultThresholds returns Envoy's defaults: 1024 requests, 3 retries.
func DefaultThresholds() Thresholds {
	return Thresholds{MaxRequests: DefaultMaxRequests, MaxRetries: DefaultMaxRetries}
}

// OverflowError is a request or retry refused by a circuit breaker.
type OverflowError struct {
	Cluster string
	// Kind is the exhausted resource: one of the Overflow* kinds.
	Kind string
}

func (e *OverflowError) Error() string {
	return fmt.Sprintf("cluster %q: circuit breaker: too many %s", e.Cluster, e.Kind)
}

// Is makes every OverflowError match ErrOverflow.
func (e *OverflowError) Is(target error) bool { return target == ErrOverflow }

// ErrOverflow matches any circuit-breaker overflow (errors.Is).
var ErrOverflow = errors.New("cluster: circuit breaker overflow")

// IsOverflow reports whether err is a circuit-breaker overflow.
func IsOverflow(err error) bool { return errors.Is(err, ErrOverflow) }

// breaker holds the counters a cluster's thresholds are checked against.
// They live in the Pool so that an endpoint update, which rebuilds the
// Cluster, keeps them; a change of thresholds builds a new Pool.
type breaker struct {
	requests atomic.Int64
	retries  atomic.Int64
	pending  atomic.Int64
}

// acquire admits one unit of c under limit, without waiting.
func acquire(c *atomic.Int64, limit int64) bool {
	if c.Add(1) > limit {
		c.Add(-1)
		return false
	}
	return true
}

// AcquireRetry admits a retry under the cluster's max_retries, or its retry
// budget when one is set. A refused retry is counted as an overflow; an
// admitted one must be released once its attempt is over.
func (c *Cluster) AcquireRetry() (release func(), ok bool) {
	b := &c.pool.breaker
	limit := c.limits.MaxRetries
	if bud := c.limits.Budget; bud != nil {
		limit = int64(bud.Percent / 100 * float64(b.requests.Load()))
		limit = max(limit, bud.MinConcurrency)
	}
	if !acquire(&b.retries, limit) {
		c.overflow(OverflowRetries)
		return nil, false
	}
	return c.releaseRetry, true
}

func (c *Cluster) releaseRetry() { c.pool.breaker.retries.Add(-1) }

func (c *Cluster) overflow(kind string) {
	if c.onOverflow != nil {
		c.onOverflow(kind)
	}
}

// ActiveRequests returns the requests in flight to the cluster, as its
// circuit breaker counts them.
func (c *Cluster) ActiveRequests() int64 { return c.pool.breaker.requests.Load() }

// overloaded is the local reply to a request refused by a circuit breaker:
// a 503 at once, marked so that the caller can tell it from an upstream's.
func overloaded(req *http.Request, kind string) *http.Response {
	const body = "upstream overloaded\n"
	return &http.Response{
		Status:     "503 Service Unavailable",
		StatusCode: http.StatusServiceUnavailable,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			OverloadedHeader:  {"true"},
			"Content-Type":    {"text/plain; charset=utf-8"},
			"X-Weft-Overflow": {kind},
		},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// releasing wraps a response body in a releaseBody: the lean HTTP/1.1
// transport's response has room for it.
func (c *Cluster) releasing(body io.ReadCloser) io.ReadCloser {
	var rb *releaseBody
	if b, ok := body.(*h1Body); ok && b.owner != nil {
		rb = &b.owner.release
	} else {
		rb = new(releaseBody)
	}
	*rb = releaseBody{ReadCloser: body, c: c}
	return rb
}

// releaseBody releases a request's circuit-breaker slot when the response
// body is closed, or read to its end: the request is in flight until then.
type releaseBody struct {
	io.ReadCloser
	once atomic.Bool
	c    *Cluster
}

func (b *releaseBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.finish()
	}
	return n, err
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.finish()
	return err
}

func (b *releaseBody) finish() {
	if b.once.CompareAndSwap(false, true) {
		b.c.pool.breaker.requests.Add(-1)
	}
}

// pendingRequest counts a request as pending from RoundTrip until it has a
// connection. It is allocated only when max_pending_requests is set.
type pendingRequest struct {
	b     *breaker
	done  atomic.Bool
	trace httptrace.ClientTrace
}

func (p *pendingRequest) gotConn(httptrace.GotConnInfo) { p.finish() }

func (p *pendingRequest) finish() {
	if p.done.CompareAndSwap(false, true) {
		p.b.pending.Add(-1)
	}
}

// admitPending counts req as pending, or reports that the limit is reached.
// The returned request carries the trace that ends its pending state.
func (c *Cluster) admitPending(req *http.Request) (*http.Request, *pendingRequest, bool) {
	b := &c.pool.breaker
	if !acquire(&b.pending, c.limits.MaxPendingRequests) {
		return req, nil, false
	}
	p := &pendingRequest{b: b}
	p.trace.GotConn = p.gotConn
	return req.WithContext(httptrace.WithClientTrace(req.Context(), &p.trace)), p, true
}
