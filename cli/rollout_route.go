package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// The Route a rollout manages: read, checked that a rollout may own it,
// and rewritten with the weights of each step.

// rolloutRoute is the Route a rollout writes: the stored one, when there is
// one, keeping its metadata and the settings of its one rule, or a new one.
type rolloutRoute struct{ obj *v1alpha1.Object }

// prepare checks that the rollout can run: the service's DestinationPolicy
// defines both subsets (it picks --from if need be), and its Route, if any,
// has nothing but a catch-all rule to the service. It returns the Route.
func (p *rolloutPlan) prepare(ctx context.Context, c *client.Client) (*rolloutRoute, error) {
	ref := "DestinationPolicy " + p.namespace + "/" + p.service
	obj, err := c.Get(ctx, v1alpha1.DestinationPolicyKind.Name, p.namespace, p.service)
	switch {
	case client.IsNotFound(err):
		return nil, fmt.Errorf("%s not found: a rollout needs the subsets of %s defined; apply one such as\n%s",
			ref, p.host(), p.policyExample(nil))
	case err != nil:
		return nil, err
	}
	policy, ok := obj.Spec.(*v1alpha1.DestinationPolicySpec)
	if !ok {
		return nil, fmt.Errorf("%s: unexpected spec %T", ref, obj.Spec)
	}
	var names []string
	for _, s := range policy.Subsets {
		names = append(names, s.Name)
	}
	if p.from == "" {
		// The other subset, when there is exactly one.
		if others := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == p.to }); len(others) == 1 {
			p.from = others[0]
		} else if slices.Contains(names, p.to) {
			return nil, usagef("--from is required: %s defines subsets %s; name the one to shift the traffic from",
				ref, quoteList(names))
		}
	}
	var missing []string
	for _, want := range []string{p.from, p.to} {
		if want != "" && !slices.Contains(names, want) {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s does not define subset %s (it defines %s): add it to the policy's subsets and apply it, as in\n%s",
			ref, quoteList(missing), orNone(quoteList(names)), p.policyExample(policy))
	}
	for _, s := range policy.Subsets {
		if s.Name == p.to {
			p.toVersion = s.Labels["version"]
		}
	}
	if p.toVersion == "" {
		return nil, fmt.Errorf("%s: subset %s selects no version label: a rollout judges the subset by the requests to its version (weft_requests_total{destination_version}); select it with labels: {version: ...}",
			ref, p.to)
	}

	routes, err := c.List(ctx, v1alpha1.RouteKind.Name, p.namespace)
	if err != nil {
		return nil, err
	}
	sortObjects(routes)
	for _, o := range routes {
		spec, ok := o.Spec.(*v1alpha1.RouteSpec)
		if !ok || spec.Service != p.service {
			continue
		}
		// The first Route by name that names the service governs it.
		if why := p.notManageable(spec); why != "" {
			return nil, fmt.Errorf("%s %s/%s %s; weft rollout manages only a Route with a single rule without match "+
				"that sends to subsets of %s: move the other rules elsewhere or delete the Route, then run the rollout again",
				v1alpha1.RouteKind.Name, o.Metadata.Namespace, o.Metadata.Name, why, p.service)
		}
		o.Metadata.ResourceVersion = 0
		p.route = o.Metadata.Namespace + "/" + o.Metadata.Name
		return &rolloutRoute{obj: o}, nil
	}
	p.route = p.namespace + "/" + p.service
	return &rolloutRoute{obj: &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion,
		Kind:       v1alpha1.RouteKind.Name,
		Metadata:   v1alpha1.ObjectMeta{Name: p.service, Namespace: p.namespace},
		Spec:       &v1alpha1.RouteSpec{Service: p.service, Rules: []v1alpha1.RouteRule{{}}},
	}}, nil
}

// notManageable says why a rollout may not rewrite spec, or "".
func (p *rolloutPlan) notManageable(spec *v1alpha1.RouteSpec) string {
	switch {
	case len(spec.Rules) != 1:
		return fmt.Sprintf("has %d rules", len(spec.Rules))
	case len(spec.Rules[0].Match) > 0:
		return "has a rule with match"
	}
	for _, b := range spec.Rules[0].Backends {
		if b.Service != "" && b.Service != p.service {
			return "sends traffic to service " + strconv.Quote(b.Service)
		}
	}
	return ""
}

// withWeights is the Route sending w% of the traffic to --to, the rest to --from.
func (r *rolloutRoute) withWeights(p *rolloutPlan, w int) *v1alpha1.Object {
	obj := *r.obj
	spec := *obj.Spec.(*v1alpha1.RouteSpec)
	rule := spec.Rules[0]
	rule.Backends = []v1alpha1.Backend{
		{Service: p.service, Subset: p.from, Weight: weight(100 - w)},
		{Service: p.service, Subset: p.to, Weight: weight(w)},
	}
	spec.Rules = []v1alpha1.RouteRule{rule}
	obj.Spec = &spec
	return &obj
}

func weight(w int) *int32 { v := int32(w); return &v }

// policyExample is a DestinationPolicy defining both subsets, the subsets
// of policy (if any) included.
func (p *rolloutPlan) policyExample(policy *v1alpha1.DestinationPolicySpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  apiVersion: %s\n  kind: DestinationPolicy\n  metadata: {name: %s, namespace: %s}\n  spec:\n    subsets:\n",
		v1alpha1.APIVersion, p.service, p.namespace)
	seen := map[string]bool{}
	if policy != nil {
		for _, s := range policy.Subsets {
			seen[s.Name] = true
			keys := make([]string, 0, len(s.Labels))
			for k := range s.Labels {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			labels := make([]string, 0, len(keys))
			for _, k := range keys {
				labels = append(labels, k+": "+s.Labels[k])
			}
			fmt.Fprintf(&b, "    - {name: %s, labels: {%s}}\n", s.Name, strings.Join(labels, ", "))
		}
	}
	for _, n := range []string{p.from, p.to} {
		if n != "" && !seen[n] {
			seen[n] = true
			fmt.Fprintf(&b, "    - {name: %s, labels: {version: %s}}\n", n, n)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
