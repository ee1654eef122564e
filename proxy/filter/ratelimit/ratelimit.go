// Package ratelimit is Envoy's global rate limit filter
// (envoy.filters.http.ratelimit): for each request it sends the descriptors
// its route's rate limit actions produce to a rate limit service
// (envoy.service.ratelimit.v3.RateLimitService) and refuses the request
// when the service says it is over the limit. The only service it reaches
// is the control plane, over the proxy's own mutual-TLS connection to it.
//
// The actions come from the route's RateLimitPerRoute.rate_limits (or the
// filter's own rate_limits); RouteAction.rate_limits is not read.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	commonratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/filter"
	"github.com/weftmesh/weft/proxy/filter/ratelimit/descriptor"
)

// Name is the filter's name in http_filters and typed_per_filter_config.
const Name = "envoy.filters.http.ratelimit"

func init() {
	filter.Register(filter.Factory{
		Name:   Name,
		Config: &ratelimitv3.RateLimit{},
		New: func(cfg proto.Message, env filter.Env) (filter.HTTP, error) {
			return New(cfg.(*ratelimitv3.RateLimit), env)
		},
	})
	// A route's config is another message, so it registers on its own.
	filter.Register(filter.Factory{
		Name:   Name,
		Config: &ratelimitv3.RateLimitPerRoute{},
		New: func(proto.Message, filter.Env) (filter.HTTP, error) {
			return nil, errors.New("RateLimitPerRoute is a route's config: http_filters take a RateLimit")
		},
		PerRoute: func(cfg proto.Message) (any, error) { return CompilePerRoute(cfg.(*ratelimitv3.RateLimitPerRoute)) },
	})
}

// Envoy's defaults, and what the proxy says when it refuses.
const (
	defaultTimeout        = 20 * time.Millisecond
	grpcResourceExhausted = 8
	reasonLimited         = "rate_limited"
	reasonUnavailable     = "rate_limit_service_unavailable"
	// failureLogEvery spaces out the log lines of an unreachable service.
	failureLogEvery = 10 * time.Second
)

var errNoControlPlane = errors.New("this proxy has no connection to the control plane")

// Filter is the global rate limit filter of one connection manager.
type Filter struct {
	client  rlsv3.RateLimitServiceClient
	domain  string
	timeout time.Duration
	// base holds the filter's own actions, for routes without theirs.
	base []descriptor.RateLimit

	failClosed    bool
	errorStatus   int
	limitedStatus int
	xHeaders      bool
	retryAfter    bool
	grpcExhausted bool
	xEnvoyHeader  bool

	log      *slog.Logger
	failures failureLog
}

// PerRoute is a route's compiled RateLimitPerRoute.
type PerRoute struct {
	domain     string
	rateLimits []descriptor.RateLimit
}

// CompilePerRoute checks and compiles a route's config; errors start with
// the field path.
func CompilePerRoute(c *ratelimitv3.RateLimitPerRoute) (*PerRoute, error) {
	rls, err := descriptor.Compile(c.GetRateLimits(), "rate_limits")
	if err != nil {
		return nil, err
	}
	return &PerRoute{domain: c.GetDomain(), rateLimits: rls}, nil
}

// New builds the filter from its listener-level config. Errors start with
// the field path.
func New(c *ratelimitv3.RateLimit, env filter.Env) (*Filter, error) {
	if c.GetDomain() == "" {
		return nil, errors.New("domain: is required")
	}
	svc := c.GetRateLimitService()
	if svc == nil {
		return nil, errors.New("rate_limit_service: is required")
	}
	if v := svc.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		return nil, fmt.Errorf("rate_limit_service.transport_api_version: %v is not supported (want V3)", v)
	}
	if name := svc.GetGrpcService().GetEnvoyGrpc().GetClusterName(); name != xdsmeta.ControlPlaneCluster {
		return nil, fmt.Errorf("rate_limit_service.grpc_service.envoy_grpc.cluster_name: %q is not reachable: the rate limit service is the control plane's, %q",
			name, xdsmeta.ControlPlaneCluster)
	}
	f := &Filter{
		domain:        c.GetDomain(),
		timeout:       defaultTimeout,
		failClosed:    c.GetFailureModeDeny(),
		errorStatus:   http.StatusInternalServerError,
		limitedStatus: http.StatusTooManyRequests,
		retryAfter:    c.GetEnableRetryAfterHeader(),
		grpcExhausted: c.GetRateLimitedAsResourceExhausted(),
		xEnvoyHeader:  !c.GetDisableXEnvoyRatelimitedHeader(),
		log:           env.Log,
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	// Without a connection (a proxy run without a control plane, as in
	// tests), the service is unreachable: requests fail open or closed.
	if env.ControlPlane != nil {
		f.client = rlsv3.NewRateLimitServiceClient(env.ControlPlane)
	}
	if t := c.GetTimeout(); t != nil {
		if t.CheckValid() != nil || t.AsDuration() <= 0 {
			return nil, errors.New("timeout: must be positive")
		}
		f.timeout = t.AsDuration()
	}
	if s := c.GetStatusOnError(); s != nil {
		if s.GetCode() < 400 {
			return nil, fmt.Errorf("status_on_error.code: %d is not an error status", s.GetCode())
		}
		f.errorStatus = int(s.GetCode())
	}
	if s := c.GetRateLimitedStatus(); s != nil && s.GetCode() >= 400 {
		f.limitedStatus = int(s.GetCode())
	}
	switch v := c.GetEnableXRatelimitHeaders(); v {
	case ratelimitv3.RateLimit_OFF:
	case ratelimitv3.RateLimit_DRAFT_VERSION_03:
		f.xHeaders = true
	default:
		return nil, fmt.Errorf("enable_x_ratelimit_headers: %v is not supported", v)
	}
	var err error
	if f.base, err = descriptor.Compile(c.GetRateLimits(), "rate_limits"); err != nil {
		return nil, err
	}
	return f, nil
}

// DecodeHeaders asks the rate limit service about the descriptors of the
// route's actions (or the filter's own), if they produce any.
func (f *Filter) DecodeHeaders(r *http.Request, s *filter.Stream, perRoute any) filter.Decision {
	rls, domain := f.base, f.domain
	if pr, ok := perRoute.(*PerRoute); ok && pr != nil {
		if len(pr.rateLimits) > 0 {
			rls = pr.rateLimits
		}
		if pr.domain != "" {
			domain = pr.domain
		}
	}
	if len(rls) == 0 {
		return filter.Continue
	}
	var descriptors []*commonratelimitv3.RateLimitDescriptor
	var buf [4]descriptor.Entry
	for i := range rls {
		d, ok := rls[i].Append(buf[:0], s)
		if !ok {
			continue
		}
		rd := &commonratelimitv3.RateLimitDescriptor{Entries: make([]*commonratelimitv3.RateLimitDescriptor_Entry, len(d))}
		for j, e := range d {
			rd.Entries[j] = &commonratelimitv3.RateLimitDescriptor_Entry{Key: e.Key, Value: e.Value}
		}
		descriptors = append(descriptors, rd)
	}
	if len(descriptors) == 0 {
		return filter.Continue
	}
	req := &rlsv3.RateLimitRequest{Domain: domain, Descriptors: descriptors, HitsAddend: 1}
	if f.client == nil {
		return f.unavailable(errNoControlPlane)
	}
	ctx, cancel := context.WithTimeout(r.Context(), f.timeout)
	resp, err := f.client.ShouldRateLimit(ctx, req)
	cancel()
	if err != nil {
		if r.Context().Err() != nil {
			return filter.Continue // the client went away; the request goes nowhere
		}
		return f.unavailable(err)
	}
	if resp.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
		return filter.Continue
	}
	return filter.Decision{Reply: f.limited(r, resp)}
}

// unavailable lets a request through, or refuses it when the filter fails
// closed, because the rate limit service did not answer.
func (f *Filter) unavailable(err error) filter.Decision {
	mode := "open: letting requests through"
	if f.failClosed {
		mode = "closed: refusing requests"
	}
	f.failures.note(f.log, err, mode)
	if !f.failClosed {
		return filter.Continue
	}
	return filter.Decision{Reply: &filter.Reply{
		Status: f.errorStatus,
		Body:   "rate limit service unavailable",
		Reason: reasonUnavailable,
	}}
}

// limited is the reply to a request over the limit, with the headers Envoy
// adds: x-envoy-ratelimited, the draft RFC's x-ratelimit-* from the
// tightest descriptor status, retry-after from the time until its window
// resets, and what the service asked to add.
func (f *Filter) limited(r *http.Request, resp *rlsv3.RateLimitResponse) *filter.Reply {
	reply := &filter.Reply{Status: f.limitedStatus, Body: "rate limited", Reason: reasonLimited, Header: http.Header{}}
	if f.xEnvoyHeader {
		reply.Header["X-Envoy-Ratelimited"] = []string{"true"}
	}
	var tightest *rlsv3.RateLimitResponse_DescriptorStatus
	var reset time.Duration
	for _, st := range resp.GetStatuses() {
		if st.GetCurrentLimit() == nil {
			continue
		}
		if tightest == nil || st.GetLimitRemaining() < tightest.GetLimitRemaining() {
			tightest = st
		}
		if st.GetCode() == rlsv3.RateLimitResponse_OVER_LIMIT {
			reset = max(reset, st.GetDurationUntilReset().AsDuration())
		}
	}
	resetSecs := strconv.Itoa(int(max(math.Ceil(reset.Seconds()-1e-6), 1)))
	if f.xHeaders && tightest != nil {
		lim := tightest.GetCurrentLimit()
		n := strconv.FormatUint(uint64(lim.GetRequestsPerUnit()), 10)
		reply.Header["X-Ratelimit-Limit"] = []string{n + ", " + n + ";w=" + strconv.Itoa(unitSeconds(lim.GetUnit()))}
		reply.Header["X-Ratelimit-Remaining"] = []string{strconv.FormatUint(uint64(tightest.GetLimitRemaining()), 10)}
		reply.Header["X-Ratelimit-Reset"] = []string{resetSecs}
	}
	if f.retryAfter {
		reply.Header["Retry-After"] = []string{resetSecs}
	}
	for _, h := range resp.GetResponseHeadersToAdd() {
		k := http.CanonicalHeaderKey(h.GetKey())
		reply.Header[k] = append(reply.Header[k], h.GetValue())
	}
	if f.grpcExhausted && isGRPC(r) {
		code := grpcResourceExhausted
		reply.GRPCStatus = &code
	}
	return reply
}

func unitSeconds(u rlsv3.RateLimitResponse_RateLimit_Unit) int {
	switch u {
	case rlsv3.RateLimitResponse_RateLimit_SECOND:
		return 1
	case rlsv3.RateLimitResponse_RateLimit_MINUTE:
		return 60
	case rlsv3.RateLimitResponse_RateLimit_HOUR:
		return 3600
	case rlsv3.RateLimitResponse_RateLimit_DAY:
		return 86400
	case rlsv3.RateLimitResponse_RateLimit_WEEK:
		return 7 * 86400
	case rlsv3.RateLimitResponse_RateLimit_MONTH:
		return 30 * 86400
	case rlsv3.RateLimitResponse_RateLimit_YEAR:
		return 365 * 86400
	}
	return 1
}

func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/grpc") &&
		(len(ct) == len("application/grpc") || ct[len("application/grpc")] == '+' || ct[len("application/grpc")] == ';')
}

// failureLog logs the failures of the rate limit service at most once per
// failureLogEvery, with how many there were since the last line, so that
// an outage under load does not flood the log.
type failureLog struct {
	last   atomic.Int64 // unix nanoseconds of the last line
	missed atomic.Int64
}

func (l *failureLog) note(log *slog.Logger, err error, mode string) {
	n := l.missed.Add(1)
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(failureLogEvery) || !l.last.CompareAndSwap(last, now) {
		return
	}
	l.missed.Add(-n)
	log.Warn("rate limit service unreachable; failing "+mode, "filter", Name, "err", err, "failures", n)
}

var _ filter.HTTP = (*Filter)(nil)
