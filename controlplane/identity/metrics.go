package identity

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

type metrics struct {
	signed *prometheus.CounterVec // by auth
	failed *prometheus.CounterVec // by reason
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		signed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_ca_csrs_signed_total",
			Help: "SVIDs issued by the Identity service, by how the caller authenticated (join_token, svid).",
		}, []string{"auth"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_ca_csr_failures_total",
			Help: "Identity requests that got no SVID, by reason (unauthenticated, permission_denied, invalid_argument, unavailable, canceled, internal).",
		}, []string{"reason"}),
	}
	if reg != nil {
		m.signed = register(reg, m.signed)
		m.failed = register(reg, m.failed)
	}
	// Export zeros from the start, so that rates and alerts work before the
	// first event.
	for _, auth := range []string{authJoinToken, authSVID} {
		m.signed.WithLabelValues(auth)
	}
	for _, reason := range []string{"unauthenticated", "permission_denied", "invalid_argument"} {
		m.failed.WithLabelValues(reason)
	}
	return m
}

// register registers c, or returns the equal collector already registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(fmt.Sprintf("identity: register metrics: %v", err))
}

// failureReason is the "reason" label for a refused request.
func failureReason(code codes.Code) string {
	switch code {
	case codes.Unauthenticated:
		return "unauthenticated"
	case codes.PermissionDenied:
		return "permission_denied"
	case codes.InvalidArgument:
		return "invalid_argument"
	case codes.Unavailable:
		return "unavailable"
	case codes.Canceled, codes.DeadlineExceeded:
		return "canceled"
	default:
		return "internal"
	}
}
