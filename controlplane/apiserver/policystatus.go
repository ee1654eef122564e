package apiserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
)

// PolicyStatusSource tells how far a destination policy has reached the
// proxies that enforce it; *xds.Server satisfies it.
type PolicyStatusSource interface {
	// PolicyStatus returns how many connected proxies of service enforce
	// the policy kind namespace/name, how many of them accepted a
	// configuration carrying revision (or a later one), and the messages
	// of those that rejected their current one.
	PolicyStatus(kind, namespace, name, service string, revision int64) (want, applied int, nacks []string)
}

// policyKind is how the status API reads one kind of destination policy:
// the policies enforced on their service's inbound listener. Another kind
// (RequestAuth, RateLimit) plugs in with an entry in policyKinds.
type policyKind struct {
	// service is the destination of a policy of the kind.
	service func(o *v1alpha1.Object) string
	// warnings lists what of an accepted policy can never match; all are
	// the stored policies of the kind in the policy's namespace.
	warnings func(ctx context.Context, s *server, o *v1alpha1.Object, all []*v1alpha1.Object) ([]string, error)
}

var policyKinds = map[string]policyKind{
	v1alpha1.AccessPolicyKind.Name: {
		service: func(o *v1alpha1.Object) string {
			if p, ok := o.Spec.(*v1alpha1.AccessPolicySpec); ok {
				return p.Service
			}
			return ""
		},
		warnings: accessPolicyWarnings,
	},
}

// policyStatuses answers GET /api/v1/status/policies[?kind=][&namespace=]:
// for each stored policy, whether it is accepted, how many of its
// service's proxies applied it, and what of it can never match.
func (s *server) policyStatuses(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kinds := slices.Sorted(func(yield func(string) bool) {
		for k := range policyKinds {
			if !yield(k) {
				return
			}
		}
	})
	if want := q.Get("kind"); want != "" {
		k, ok := v1alpha1.Lookup(want)
		if _, policy := policyKinds[k.Name]; !ok || !policy {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("kind %q has no policy status: use one of %v", want, kinds))
			return
		}
		kinds = []string{k.Name}
	}
	list := client.PolicyStatusList{Items: []client.PolicyStatus{}}
	for _, kind := range kinds {
		items, err := s.policyStatusesOf(r.Context(), kind, q.Get("namespace"))
		if err != nil {
			writeError(w, statusOf(err), "policy status: "+err.Error())
			return
		}
		list.Items = append(list.Items, items...)
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *server) policyStatusesOf(ctx context.Context, kind, namespace string) ([]client.PolicyStatus, error) {
	pk := policyKinds[kind]
	objs, err := s.Store.List(ctx, kind, namespace)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	slices.SortFunc(objs, func(a, b *v1alpha1.Object) int {
		return cmp.Or(cmp.Compare(a.Metadata.Namespace, b.Metadata.Namespace), cmp.Compare(a.Metadata.Name, b.Metadata.Name))
	})
	items := make([]client.PolicyStatus, 0, len(objs))
	for _, o := range objs {
		st := client.PolicyStatus{Kind: kind, Namespace: o.Metadata.Namespace, Name: o.Metadata.Name, Service: pk.service(o), Accepted: true}
		if invalid := o.Validate(); len(invalid) > 0 {
			st.Accepted, st.Reason = false, "invalid: "+invalid[0].Error()
		} else {
			details, err := s.checkReferences(ctx, []*v1alpha1.Object{o})
			if err != nil {
				return nil, err
			}
			if len(details) > 0 {
				d := details[0]
				d.Document, d.Ref = 0, ""
				st.Accepted, st.Reason = false, d.String()
			}
		}
		if st.Accepted {
			if st.Warnings, err = pk.warnings(ctx, s, o, objs); err != nil {
				return nil, err
			}
		}
		st.Phase = s.policyPhase(&st, o.Metadata.ResourceVersion)
		items = append(items, st)
	}
	return items, nil
}

// policyPhase fills in what the proxies say of an accepted policy and
// returns its phase, as routePhase does for Routes.
func (s *server) policyPhase(st *client.PolicyStatus, revision int64) string {
	if !st.Accepted {
		return client.RouteNotAccepted
	}
	if s.PolicyStatus == nil {
		return client.RouteUnknown
	}
	want, applied, nacks := s.PolicyStatus.PolicyStatus(st.Kind, st.Namespace, st.Name, st.Service, revision)
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

// accessPolicyWarnings checks an AccessPolicy against its service as the
// mesh serves it and against the service's DENY policies.
func accessPolicyWarnings(ctx context.Context, s *server, o *v1alpha1.Object, all []*v1alpha1.Object) ([]string, error) {
	p := o.Spec.(*v1alpha1.AccessPolicySpec)
	ns := o.Metadata.Namespace
	env := v1alpha1.AccessEnv{TrustDomain: s.TrustDomain, Deny: map[string]*v1alpha1.AccessPolicySpec{}}

	mode := v1alpha1.MTLSStrict
	mesh, err := s.getOptional(ctx, "Mesh", "", "default")
	if err != nil {
		return nil, err
	}
	if m, ok := specOf[*v1alpha1.MeshSpec](mesh); ok {
		m.Default()
		mode = m.MTLS.Mode
	}
	svc, err := s.getOptional(ctx, "Service", ns, p.Service)
	if err != nil {
		return nil, err
	}
	spec, _ := specOf[*v1alpha1.ServiceSpec](svc)
	env.Mode = spec.MTLSMode(mode)
	if spec != nil && len(spec.Ports) > 0 {
		env.ServedPort = spec.Ports[0].Port
	}
	if k, ok := v1alpha1.Lookup("RequestAuth"); ok {
		// A RequestAuth bears the name of the service it guards.
		ra, err := s.getOptional(ctx, k.Name, ns, p.Service)
		if err != nil {
			return nil, err
		}
		env.RequestAuth = ra != nil
	}
	for _, other := range all {
		d, ok := other.Spec.(*v1alpha1.AccessPolicySpec)
		if ok && other.Metadata.Namespace == ns && d.Service == p.Service && d.Action == v1alpha1.AccessDeny && len(other.Validate()) == 0 {
			env.Deny[other.Metadata.Name] = d
		}
	}
	return v1alpha1.AccessPolicyWarnings(ns, o.Metadata.Name, p, env), nil
}

// getOptional returns a stored object, or nil when there is none.
func (s *server) getOptional(ctx context.Context, kind, namespace, name string) (*v1alpha1.Object, error) {
	o, err := s.Store.Get(ctx, kind, namespace, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return o, err
}

// specOf returns o's spec as a T, if o is set and holds one.
func specOf[T v1alpha1.Spec](o *v1alpha1.Object) (T, bool) {
	var zero T
	if o == nil {
		return zero, false
	}
	spec, ok := o.Spec.(T)
	return spec, ok
}
