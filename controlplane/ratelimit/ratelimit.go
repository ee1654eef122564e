// Package ratelimit is the control plane's global rate limit service,
// Envoy's envoy.service.ratelimit.v3.RateLimitService, served beside ADS on
// the gRPC port. It knows the global limits of every RateLimit resource and
// counts each in fixed windows of its unit, in this replica's memory.
//
// Only the mesh's proxies may call it, each with its SVID, and each only
// about its own service: a descriptor is (destination, limit[, source]),
// and its destination must be the caller's service. A limit per source
// counts each caller's SPIFFE ID apart, and the callers without one
// (plaintext, in PERMISSIVE mode) together. A descriptor that names no
// known global limit is not limited, as in Envoy's reference service.
//
// Counts are per replica: with several control-plane replicas, each counts
// the requests of the proxies connected to it, so a service whose proxies
// are spread over N replicas may get up to N times its global limit.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	commonratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
)

// Options configure a Server.
type Options struct {
	// TrustDomain is the mesh's: callers from any other are refused.
	TrustDomain string
	// Metrics, if set, receives the decision counter.
	Metrics prometheus.Registerer
	// Log defaults to slog.Default().
	Log *slog.Logger
	// Now is the clock; it defaults to time.Now.
	Now func() time.Time
}

// Server implements rlsv3.RateLimitServiceServer.
type Server struct {
	rlsv3.UnimplementedRateLimitServiceServer

	trustDomain string
	log         *slog.Logger
	now         func() time.Time
	limits      atomic.Pointer[table]
	counts      windows
	decisions   *prometheus.CounterVec
}

// limitKey names a global limit: the destination's ServiceHost and the
// limit's name in its RateLimit.
type limitKey struct{ destination, name string }

// limit is one global limit.
type limit struct {
	requests  uint32
	window    time.Duration
	unit      rlsv3.RateLimitResponse_RateLimit_Unit
	perSource bool
}

type table map[limitKey]limit

// New returns a rate limit service that knows no limits until Update.
func New(opts Options) *Server {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		trustDomain: opts.TrustDomain,
		log:         log.With("component", "ratelimit"),
		now:         opts.Now,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "weft",
			Subsystem: "ratelimit",
			Name:      "decisions_total",
			Help:      "Descriptors counted by this replica's global rate limit service, by destination, limit and code (ok or over_limit).",
		}, []string{"destination", "limit", "code"}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.limits.Store(&table{})
	if opts.Metrics != nil {
		if err := opts.Metrics.Register(s.decisions); err != nil {
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) {
				if c, ok := dup.ExistingCollector.(*prometheus.CounterVec); ok {
					s.decisions = c
				}
			} else {
				s.log.Warn("rate limit counter not exported", "err", err)
			}
		}
	}
	return s
}

// Register serves the rate limit service on g, whose TLS configuration
// must verify client certificates against the mesh's trust bundle.
func (s *Server) Register(g *grpc.Server) { rlsv3.RegisterRateLimitServiceServer(g, s) }

// Update takes the global limits of in's RateLimits. Counts of limits that
// stay are kept.
func (s *Server) Update(in *translate.Input) {
	t := table{}
	for key, rl := range in.RateLimits {
		for i := range rl.Limits {
			l := &rl.Limits[i]
			g := l.Global
			if g == nil {
				continue
			}
			t[limitKey{destination: xdsmeta.ServiceHost(key.Name, key.Namespace), name: l.Name}] = limit{
				requests:  g.Requests,
				window:    g.Unit.Duration(),
				unit:      rlsUnit(g.Unit),
				perSource: l.PerSource,
			}
		}
	}
	s.limits.Store(&t)
}

func rlsUnit(u v1alpha1.RateUnit) rlsv3.RateLimitResponse_RateLimit_Unit {
	switch u {
	case v1alpha1.UnitSecond:
		return rlsv3.RateLimitResponse_RateLimit_SECOND
	case v1alpha1.UnitMinute:
		return rlsv3.RateLimitResponse_RateLimit_MINUTE
	case v1alpha1.UnitHour:
		return rlsv3.RateLimitResponse_RateLimit_HOUR
	}
	return rlsv3.RateLimitResponse_RateLimit_UNKNOWN
}

// ShouldRateLimit counts each descriptor's hits in the current window of
// its limit, and answers OVER_LIMIT when any window holds more than its
// limit allows.
func (s *Server) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	caller, err := peerIdentity(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "ratelimit: "+err.Error())
	}
	if caller.TrustDomain != s.trustDomain {
		return nil, status.Errorf(codes.PermissionDenied, "ratelimit: client certificate %s is from trust domain %q, but this mesh's is %q",
			caller, caller.TrustDomain, s.trustDomain)
	}
	if req.GetDomain() != xdsmeta.RateLimitDomain {
		return nil, status.Errorf(codes.InvalidArgument, "ratelimit: unknown domain %q (want %q)", req.GetDomain(), xdsmeta.RateLimitDomain)
	}
	self := xdsmeta.ServiceHost(caller.Service, caller.Namespace)
	hits := req.GetHitsAddend()
	if hits == 0 {
		hits = 1
	}
	limits := *s.limits.Load()
	now := s.now()
	resp := &rlsv3.RateLimitResponse{
		OverallCode: rlsv3.RateLimitResponse_OK,
		Statuses:    make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(req.GetDescriptors())),
	}
	for i, d := range req.GetDescriptors() {
		key, source, err := parse(d)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "ratelimit: descriptors[%d]: %v", i, err)
		}
		if key.destination != self {
			return nil, status.Errorf(codes.PermissionDenied, "ratelimit: descriptors[%d]: %s may only count requests to its own service %s, not to %s",
				i, caller, self, key.destination)
		}
		st := &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
		resp.Statuses[i] = st
		l, ok := limits[key]
		if !ok || (!l.perSource && source != "") {
			continue // no such limit (any more): not limited
		}
		// A limit per source counts the callers without an identity
		// (plaintext, in PERMISSIVE mode) together, under source "".
		h := uint64(hits)
		if a := d.GetHitsAddend(); a != nil {
			h = a.GetValue()
		}
		count, reset, counted := s.counts.add(key.destination+"\x00"+key.name+"\x00"+source, now, l.window, h)
		if !counted {
			// Too many distinct sources at once: count this one with the
			// others that did not fit, against one shared window.
			if count, reset, counted = s.counts.add(key.destination+"\x00"+key.name+"\x01", now, l.window, h); !counted {
				count = uint64(l.requests) + 1 // nowhere to count it: refuse
			}
		}
		st.CurrentLimit = &rlsv3.RateLimitResponse_RateLimit{Name: key.name, RequestsPerUnit: l.requests, Unit: l.unit}
		st.DurationUntilReset = durationpb.New(reset)
		code := "ok"
		if count > uint64(l.requests) {
			st.Code, code = rlsv3.RateLimitResponse_OVER_LIMIT, "over_limit"
			resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
		} else {
			st.LimitRemaining = l.requests - uint32(count)
		}
		s.decisions.WithLabelValues(key.destination, key.name, code).Inc()
	}
	return resp, nil
}

// parse reads a descriptor the translator's actions produce:
// destination, limit, then optionally source.
func parse(d *commonratelimitv3.RateLimitDescriptor) (key limitKey, source string, err error) {
	es := d.GetEntries()
	if len(es) < 2 || len(es) > 3 || es[0].GetKey() != xdsmeta.DescriptorDestination || es[1].GetKey() != xdsmeta.DescriptorLimit ||
		(len(es) == 3 && es[2].GetKey() != xdsmeta.DescriptorSource) {
		return key, "", fmt.Errorf("want the entries %s, %s and optionally %s",
			xdsmeta.DescriptorDestination, xdsmeta.DescriptorLimit, xdsmeta.DescriptorSource)
	}
	key = limitKey{destination: es[0].GetValue(), name: es[1].GetValue()}
	if len(es) == 3 {
		if source = es[2].GetValue(); source == "" {
			return key, "", errors.New("the source is empty")
		}
	}
	return key, source, nil
}

// peerIdentity is the SPIFFE ID of the caller's verified client certificate.
func peerIdentity(ctx context.Context) (spiffe.ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffe.ID{}, errors.New("no peer on the call")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return spiffe.ID{}, errors.New("the connection is not TLS")
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return spiffe.ID{}, errors.New("a client certificate (the proxy's SVID) is required")
	}
	id, err := spiffe.FromCert(chains[0][0])
	if err != nil {
		return spiffe.ID{}, fmt.Errorf("client certificate: %w", err)
	}
	if id.IsControlPlane() {
		return spiffe.ID{}, errors.New("the control plane's own identity is not a proxy's")
	}
	return id, nil
}
