package apiserver

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// Statuses reads what became of Routes and destination policies exactly as
// GET /api/v1/status/routes and /api/v1/status/policies do, for readers in
// the control plane's own process (the dashboard). It checks no credential:
// whoever holds it is trusted.
type Statuses struct {
	s *server
}

// NewStatuses reads statuses with opts' Store, RouteStatus, PolicyStatus
// and TrustDomain; the other fields are not used.
func NewStatuses(opts Options) *Statuses {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Statuses{s: &server{Options: opts}}
}

// RouteStatuses returns the status of every Route in namespace, or in every
// namespace when it is empty.
func (st *Statuses) RouteStatuses(ctx context.Context, namespace string) ([]client.RouteStatus, error) {
	return st.s.routeStatusList(ctx, namespace)
}

// PolicyStatuses returns the status of the policies of kind (every kind
// that has a policy status when empty) in namespace (every namespace when
// empty).
func (st *Statuses) PolicyStatuses(ctx context.Context, kind, namespace string) ([]client.PolicyStatus, error) {
	kinds := make([]string, 0, len(policyKinds))
	for k := range policyKinds {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	if kind != "" {
		k, ok := v1alpha1.Lookup(kind)
		if _, policy := policyKinds[k.Name]; !ok || !policy {
			return nil, fmt.Errorf("kind %q has no policy status: use one of %v", kind, kinds)
		}
		kinds = []string{k.Name}
	}
	var out []client.PolicyStatus
	for _, k := range kinds {
		items, err := st.s.policyStatusesOf(ctx, k, namespace)
		if err != nil {
			return nil, fmt.Errorf("policy status: %w", err)
		}
		out = append(out, items...)
	}
	return out, nil
}
