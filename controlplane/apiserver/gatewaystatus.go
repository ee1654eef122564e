package apiserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
)

// A Gateway's status is a policy status whose service is the gateway
// proxies' own: accepted when valid, applied once those proxies ACKed
// their listeners, with warnings for what they cannot serve (a port that
// another Gateway of the same proxies took first, a listener no Route
// attaches to). A gateway Route's status counts the proxies of the
// Gateways it names (gatewayRouteStatus).
func init() {
	policyKinds[v1alpha1.GatewayKind.Name] = policyKind{
		service: func(o *v1alpha1.Object) string {
			if g, ok := o.Spec.(*v1alpha1.GatewaySpec); ok {
				return g.Service
			}
			return ""
		},
		warnings: gatewayWarnings,
	}
}

// gatewayWarnings names the listeners of a Gateway that serve nothing.
// all are the stored Gateways of its namespace.
func gatewayWarnings(ctx context.Context, s *server, o *v1alpha1.Object, all []*v1alpha1.Object) ([]string, error) {
	spec := o.Spec.(*v1alpha1.GatewaySpec)
	var warnings []string
	// Should two Gateways of one proxy service claim a port, the first by
	// name has it (controlplane/translate/gateway.go).
	for _, other := range all {
		os, ok := other.Spec.(*v1alpha1.GatewaySpec)
		if !ok || other.Metadata.Namespace != o.Metadata.Namespace || os.Service != spec.Service ||
			cmp.Compare(other.Metadata.Name, o.Metadata.Name) >= 0 {
			continue
		}
		for i, l := range spec.Listeners {
			if slices.ContainsFunc(os.Listeners, func(ol v1alpha1.GatewayListener) bool { return ol.Port == l.Port }) {
				warnings = append(warnings, fmt.Sprintf("spec.listeners[%d] (%s): port %d is served by Gateway %s, first by name: this listener is not served",
					i, l.Name, l.Port, other.Metadata.Name))
			}
		}
	}
	routes, err := s.Store.List(ctx, v1alpha1.RouteKind.Name, o.Metadata.Namespace)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for i, l := range spec.Listeners {
		if l.HTTPSRedirect {
			continue
		}
		attached := slices.ContainsFunc(routes, func(r *v1alpha1.Object) bool {
			rs, ok := r.Spec.(*v1alpha1.RouteSpec)
			return ok && slices.Contains(rs.Gateways, o.Metadata.Name) && slices.ContainsFunc(rs.Hosts, func(h string) bool {
				return gatewayServes(l.Hosts, h)
			})
		})
		if !attached {
			warnings = append(warnings, fmt.Sprintf("spec.listeners[%d] (%s): no Route attaches to it: every request gets 404", i, l.Name))
		}
	}
	return warnings, nil
}

// gatewayServes mirrors translate.GatewayHostAllowed: whether a listener
// with hosts serves a Route's host.
func gatewayServes(listenerHosts []string, host string) bool {
	for _, l := range listenerHosts {
		switch {
		case l == host, l == "*":
			return true
		case len(l) > 2 && l[:2] == "*." && host != "*":
			h := host
			if len(h) > 2 && h[:2] == "*." {
				h = h[2:]
			}
			if v1alpha1.GatewayHostMatches(l, h) {
				return true
			}
		}
	}
	return false
}

// gatewayRouteStatus fills in the status of a Route that attaches to
// gateways: accepted when valid and every Gateway it names exists and
// serves one of its hosts; applied as far as those Gateways are.
func (s *server) gatewayRouteStatus(ctx context.Context, o *v1alpha1.Object, spec *v1alpha1.RouteSpec, st *client.RouteStatus) error {
	if invalid := o.Validate(); len(invalid) > 0 {
		st.Accepted, st.Reason, st.Phase = false, "invalid: "+invalid[0].Error(), client.RouteNotAccepted
		return nil
	}
	var gateways []*v1alpha1.Object
	for _, name := range spec.Gateways {
		g, err := s.Store.Get(ctx, v1alpha1.GatewayKind.Name, o.Metadata.Namespace, name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("route status: %w", err)
		}
		if err != nil {
			st.Accepted, st.Reason = false, fmt.Sprintf("Gateway %s/%s does not exist", o.Metadata.Namespace, name)
			st.Phase = client.RouteNotAccepted
			return nil
		}
		gs := g.Spec.(*v1alpha1.GatewaySpec)
		if !slices.ContainsFunc(gs.Listeners, func(l v1alpha1.GatewayListener) bool {
			return !l.HTTPSRedirect && slices.ContainsFunc(spec.Hosts, func(h string) bool { return gatewayServes(l.Hosts, h) })
		}) {
			st.Accepted, st.Reason = false, fmt.Sprintf("no listener of Gateway %s serves any of the hosts %v", name, spec.Hosts)
			st.Phase = client.RouteNotAccepted
			return nil
		}
		gateways = append(gateways, g)
	}
	if s.PolicyStatus == nil {
		st.Phase = client.RouteUnknown
		return nil
	}
	var want, applied int
	var nacks []string
	for _, g := range gateways {
		w, a, n := s.PolicyStatus.PolicyStatus(v1alpha1.GatewayKind.Name, g.Metadata.Namespace, g.Metadata.Name,
			g.Spec.(*v1alpha1.GatewaySpec).Service, g.Metadata.ResourceVersion)
		want, applied, nacks = want+w, applied+a, append(nacks, n...)
	}
	st.Proxies, st.Applied, st.Errors = &want, &applied, nacks
	switch {
	case len(nacks) > 0:
		st.Phase = client.RouteRejected
	case want == 0:
		st.Phase = client.RouteNoProxies
	case applied < want:
		st.Phase = client.RoutePending
	default:
		st.Phase = client.RouteApplied
	}
	return nil
}
