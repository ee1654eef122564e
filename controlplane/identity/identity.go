// Package identity serves the Identity gRPC service: it turns a workload's
// certificate signing request into an X.509 SVID once the caller has proved
// it is that workload, with a join token the first time and with its current
// SVID when it rotates.
//
// This package is the gRPC edge of the mesh CA: errors from the ca and token
// packages become status codes here and nowhere else.
package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/token"
)

// DefaultTTL is the lifetime of an SVID when Options.TTL says nothing.
const DefaultTTL = 24 * time.Hour

// Options configure the service.
type Options struct {
	// CA signs the SVIDs. Required.
	CA *ca.CA
	// Tokens verifies join tokens. When nil, callers can authenticate only
	// with an SVID.
	Tokens *token.Issuer
	// TTL returns the lifetime of the next SVID. It is called on every
	// request, so a change to the Mesh applies at once. DefaultTTL when nil or
	// when it returns a duration that is not positive.
	TTL func() time.Duration
	// Log receives one line per issued SVID and per refused request;
	// slog.Default() when nil.
	Log *slog.Logger
	// Metrics is where the service registers its counters; none when nil.
	// Collectors already registered by another Service are shared.
	Metrics prometheus.Registerer
}

// Service implements meshv1.IdentityServer.
type Service struct {
	meshv1.UnimplementedIdentityServer

	ca      *ca.CA
	tokens  *token.Issuer
	ttl     func() time.Duration
	log     *slog.Logger
	metrics *metrics
}

// New returns the Identity service. It panics when opts.CA is nil or when
// opts.Metrics refuses the service's collectors, both programming errors.
func New(opts Options) *Service {
	if opts.CA == nil {
		panic("identity: Options.CA is required")
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	return &Service{
		ca:      opts.CA,
		tokens:  opts.Tokens,
		ttl:     opts.TTL,
		log:     log.With("component", "identity"),
		metrics: newMetrics(opts.Metrics),
	}
}

// Sign authenticates the caller, checks that it asks for its own identity,
// and signs its CSR.
func (s *Service) Sign(ctx context.Context, req *meshv1.SignRequest) (resp *meshv1.SignResponse, err error) {
	var who caller
	defer func() {
		if err != nil {
			s.refused(ctx, who, req, err)
		}
	}()

	who, err = s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetService() == "" || req.GetNamespace() == "" {
		return nil, status.Error(codes.InvalidArgument, "identity: service and namespace are required")
	}
	asked := spiffe.ID{TrustDomain: s.ca.TrustDomain(), Namespace: req.GetNamespace(), Service: req.GetService()}
	if asked != who.id {
		return nil, status.Errorf(codes.PermissionDenied, "identity: %s cannot obtain the identity of %s/%s",
			who, req.GetNamespace(), req.GetService())
	}

	chain, err := s.ca.SignCSR(req.GetCsrDer(), who.id, s.nextTTL())
	if errors.Is(err, ca.ErrInvalidCSR) {
		return nil, status.Errorf(codes.InvalidArgument, "identity: %v", err)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "identity: %v", err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, status.Errorf(codes.Internal, "identity: parse the SVID just signed: %v", err)
	}

	s.recordIssued(ctx, who, chain)
	s.metrics.signed.WithLabelValues(who.method).Inc()
	s.log.Info("issued SVID",
		"spiffe_id", who.id.String(),
		"serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339),
		"auth", who.method,
		"credential", who.credential,
		"peer", peerAddr(ctx))
	return &meshv1.SignResponse{
		CertChainDer:   chain,
		TrustBundleDer: s.ca.TrustBundle(),
		TrustDomain:    s.ca.TrustDomain(),
	}, nil
}

// refused counts and logs a request that got no SVID. Messages never hold a
// secret: the token package does not repeat tokens in its errors.
func (s *Service) refused(ctx context.Context, who caller, req *meshv1.SignRequest, err error) {
	st := status.Convert(err)
	reason := failureReason(st.Code())
	s.metrics.failed.WithLabelValues(reason).Inc()
	level := slog.LevelWarn
	if reason == "internal" {
		level = slog.LevelError
	}
	attrs := []any{
		"reason", reason,
		"error", st.Message(),
		"requested", fmt.Sprintf("%s/%s", req.GetNamespace(), req.GetService()),
		"peer", peerAddr(ctx),
	}
	switch {
	case who.refusal != "":
		attrs = append(attrs, "auth", who.method, "auth_refused", who.refusal)
	case who.method != "":
		attrs = append(attrs, "caller", who.id.String(), "auth", who.method, "credential", who.credential)
	}
	s.log.Log(ctx, level, "refused to issue SVID", attrs...)
}

func (s *Service) nextTTL() time.Duration {
	if s.ttl != nil {
		if ttl := s.ttl(); ttl > 0 {
			return ttl
		}
	}
	return DefaultTTL
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

var _ meshv1.IdentityServer = (*Service)(nil)
