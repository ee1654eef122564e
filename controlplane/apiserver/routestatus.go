package apiserver

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// RouteStatusSource tells how far the Route of a service has reached the
// connected proxies; *xds.Server satisfies it.
type RouteStatusSource interface {
	// RouteStatus returns how many connected proxies read the Route of the
	// service, how many of them run the configuration last pushed to them,
	// and the messages of those that rejected it.
	RouteStatus(namespace, service string) (want, applied int, nacks []string)
}

// routeStatuses answers GET /api/v1/status/routes[?namespace=]: for each
// stored Route, whether it is accepted and how many proxies applied it.
func (s *server) routeStatuses(w http.ResponseWriter, r *http.Request) {
	items, err := s.routeStatusList(r.Context(), r.URL.Query().Get("namespace"))
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, client.RouteStatusList{Items: items})
}

// routeStatusList is the status of every stored Route in namespace (every
// namespace when empty), sorted by namespace and name.
func (s *server) routeStatusList(ctx context.Context, namespace string) ([]client.RouteStatus, error) {
	objs, err := s.Store.List(ctx, v1alpha1.RouteKind.Name, namespace)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	slices.SortFunc(objs, func(a, b *v1alpha1.Object) int {
		return cmp.Or(cmp.Compare(a.Metadata.Namespace, b.Metadata.Namespace), cmp.Compare(a.Metadata.Name, b.Metadata.Name))
	})
	// The first Route by name that names a service governs it, as the
	// proxies are configured (controlplane/meshstate).
	type serviceKey struct{ namespace, service string }
	governs := map[serviceKey]*v1alpha1.Object{}
	items := make([]client.RouteStatus, 0, len(objs))
	for _, o := range objs {
		spec, ok := o.Spec.(*v1alpha1.RouteSpec)
		if !ok {
			continue
		}
		st := client.RouteStatus{Namespace: o.Metadata.Namespace, Name: o.Metadata.Name, Service: spec.Service, Accepted: true}
		if spec.AttachesToGateways() {
			// A gateway Route leaves its service's mesh traffic alone.
			if err := s.gatewayRouteStatus(ctx, o, spec, &st); err != nil {
				return nil, err
			}
			items = append(items, st)
			continue
		}
		key := serviceKey{o.Metadata.Namespace, spec.Service}
		first, taken := governs[key]
		invalid := o.Validate()
		if !taken {
			governs[key] = o
		}
		switch {
		case taken:
			st.Accepted = false
			st.Reason = fmt.Sprintf("service %s is governed by Route %s/%s, the first by name that names it",
				spec.Service, first.Metadata.Namespace, first.Metadata.Name)
		case len(invalid) > 0:
			st.Accepted, st.Reason = false, "invalid: "+invalid[0].Error()
		default:
			details, err := s.checkReferences(ctx, []*v1alpha1.Object{o})
			if err != nil {
				return nil, fmt.Errorf("route status: %w", err)
			}
			if len(details) > 0 {
				d := details[0]
				d.Document, d.Ref = 0, ""
				st.Accepted, st.Reason = false, d.String()
			}
		}
		st.Phase = s.routePhase(&st)
		items = append(items, st)
	}
	return items, nil
}

// routePhase fills in what the proxies say of an accepted Route and
// returns its phase.
func (s *server) routePhase(st *client.RouteStatus) string {
	if !st.Accepted {
		return client.RouteNotAccepted
	}
	if s.RouteStatus == nil {
		return client.RouteUnknown
	}
	want, applied, nacks := s.RouteStatus.RouteStatus(st.Namespace, st.Service)
	st.Proxies, st.Applied, st.Errors = &want, &applied, nacks
	switch {
	case len(nacks) > 0:
		return client.RouteRejected
	case want == 0:
		return client.RouteNoProxies
	case applied < want:
		return client.RoutePending
	}
	return client.RouteApplied
}
