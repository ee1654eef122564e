package apiserver

import (
	"cmp"
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
	objs, err := s.Store.List(r.Context(), v1alpha1.RouteKind.Name, r.URL.Query().Get("namespace"))
	if err != nil {
		writeError(w, statusOf(err), "list routes: "+err.Error())
		return
	}
	slices.SortFunc(objs, func(a, b *v1alpha1.Object) int {
		return cmp.Or(cmp.Compare(a.Metadata.Namespace, b.Metadata.Namespace), cmp.Compare(a.Metadata.Name, b.Metadata.Name))
	})
	// The first Route by name that names a service governs it, as the
	// proxies are configured (controlplane/meshstate).
	type serviceKey struct{ namespace, service string }
	governs := map[serviceKey]*v1alpha1.Object{}
	list := client.RouteStatusList{Items: make([]client.RouteStatus, 0, len(objs))}
	for _, o := range objs {
		spec, ok := o.Spec.(*v1alpha1.RouteSpec)
		if !ok {
			continue
		}
		st := client.RouteStatus{Namespace: o.Metadata.Namespace, Name: o.Metadata.Name, Service: spec.Service, Accepted: true}
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
			details, err := s.checkReferences(r.Context(), []*v1alpha1.Object{o})
			if err != nil {
				writeError(w, statusOf(err), "route status: "+err.Error())
				return
			}
			if len(details) > 0 {
				d := details[0]
				d.Document, d.Ref = 0, ""
				st.Accepted, st.Reason = false, d.String()
			}
		}
		st.Phase = s.routePhase(&st)
		list.Items = append(list.Items, st)
	}
	writeJSON(w, http.StatusOK, list)
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
