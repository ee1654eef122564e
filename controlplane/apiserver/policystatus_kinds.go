package apiserver

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// RequestAuth and RateLimit are destination policies too, each named after
// the service it governs; their status comes from the same machinery as
// AccessPolicy's.
func init() {
	byName := func(o *v1alpha1.Object) string { return o.Metadata.Name }
	policyKinds[v1alpha1.RequestAuthKind.Name] = policyKind{service: byName, warnings: requestAuthWarnings}
	policyKinds[v1alpha1.RateLimitKind.Name] = policyKind{service: byName, warnings: rateLimitWarnings}
}

// routeRules returns the names of the rules of the Route governing
// service in namespace (the first Route by name that names it), and
// whether there is one.
func (s *server) routeRules(ctx context.Context, namespace, service string) (map[string]bool, bool, error) {
	routes, err := s.Store.List(ctx, v1alpha1.RouteKind.Name, namespace)
	if err != nil {
		return nil, false, fmt.Errorf("list routes: %w", err)
	}
	slices.SortFunc(routes, func(a, b *v1alpha1.Object) int { return cmp.Compare(a.Metadata.Name, b.Metadata.Name) })
	for _, o := range routes {
		spec, ok := o.Spec.(*v1alpha1.RouteSpec)
		if !ok || spec.Service != service {
			continue
		}
		names := map[string]bool{}
		for _, r := range spec.Rules {
			if r.Name != "" {
				names[r.Name] = true
			}
		}
		return names, true, nil
	}
	return nil, false, nil
}

// rateLimitWarnings names the limits that count nothing: those on a Route
// rule the service's Route does not have (apply accepts them, so that a
// RateLimit may come before its Route).
func rateLimitWarnings(ctx context.Context, s *server, o *v1alpha1.Object, _ []*v1alpha1.Object) ([]string, error) {
	spec := o.Spec.(*v1alpha1.RateLimitSpec)
	var rules map[string]bool
	var hasRoute, loaded bool
	var warnings []string
	for i, l := range spec.Limits {
		if l.RouteRule == "" {
			continue
		}
		if !loaded {
			var err error
			if rules, hasRoute, err = s.routeRules(ctx, o.Metadata.Namespace, o.Metadata.Name); err != nil {
				return nil, err
			}
			loaded = true
		}
		switch {
		case !hasRoute:
			warnings = append(warnings, fmt.Sprintf("spec.limits[%d] (%s): service %s has no Route, so routeRule %q matches nothing: the limit counts nothing",
				i, l.Name, o.Metadata.Name, l.RouteRule))
		case !rules[l.RouteRule]:
			warnings = append(warnings, fmt.Sprintf("spec.limits[%d] (%s): the Route of %s has no rule %q: the limit counts nothing",
				i, l.Name, o.Metadata.Name, l.RouteRule))
		}
	}
	return warnings, nil
}

// requestAuthWarnings names what of a RequestAuth cannot take effect: a
// rule that requires a token on Route rules the Route no longer has fails
// closed on every request (see controlplane/translate/authn.go).
func requestAuthWarnings(ctx context.Context, s *server, o *v1alpha1.Object, _ []*v1alpha1.Object) ([]string, error) {
	spec := o.Spec.(*v1alpha1.RequestAuthSpec)
	var warnings []string
	for i, r := range spec.Rules {
		if len(r.RouteRules) == 0 {
			continue
		}
		rules, hasRoute, err := s.routeRules(ctx, o.Metadata.Namespace, o.Metadata.Name)
		if err != nil {
			return nil, err
		}
		for _, name := range r.RouteRules {
			if hasRoute && rules[name] {
				continue
			}
			effect := "the rule matches less"
			if r.Require {
				effect = "a token is required on every request (fail closed)"
			}
			warnings = append(warnings, fmt.Sprintf("spec.rules[%d]: the Route of %s has no rule %q: %s", i, o.Metadata.Name, name, effect))
		}
	}
	return warnings, nil
}
