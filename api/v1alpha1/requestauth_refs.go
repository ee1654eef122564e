package v1alpha1

// requestAuth checks that a RequestAuth does not protect a tcp service and
// that the Route rules its rules name exist. As with a DestinationPolicy, a
// service not known yet is fine: the RequestAuth waits for it. The
// service's Route is the first by name being applied with it, or else the
// stored Route named after the service.
func (c *references) requestAuth(o *Object, s *RequestAuthSpec) {
	ns, svc := namespaceOf(o), o.Metadata.Name
	if proto, ok := c.service(ns, svc); ok && !proto.IsHTTP() {
		c.fail(o, NewPath("metadata").Child("name"), "service %s speaks tcp: a connection carries no JWT", quote(svc))
		return
	}
	var route *RouteSpec
	routeName := ""
	for k, a := range c.applied {
		if r, ok := a.Spec.(*RouteSpec); ok && k.namespace == ns && r.Service == svc && (route == nil || k.name < routeName) {
			route, routeName = r, k.name
		}
	}
	if route == nil {
		if r, ok := c.get(RouteKind.Name, ns, svc); ok {
			if rs, ok := r.Spec.(*RouteSpec); ok && rs.Service == svc {
				route = rs
			}
		}
	}
	rules := NewPath("spec").Child("rules")
	for i := range s.Rules {
		for j, name := range s.Rules[i].RouteRules {
			at := rules.Index(i).Child("routeRules").Index(j)
			switch {
			case route == nil:
				c.fail(o, at, "service %s has no Route: apply one named after it with a rule named %s", quote(svc), quote(name))
			case !hasRule(route, name):
				c.fail(o, at, "the Route of service %s has no rule named %s", quote(svc), quote(name))
			}
		}
	}
}

func hasRule(r *RouteSpec, name string) bool {
	for i := range r.Rules {
		if r.Rules[i].Name == name {
			return true
		}
	}
	return false
}

// routeKeepsAuthRules checks that a Route keeps the rules that the stored
// RequestAuth of its service names: without them, a rule that requires a
// token would match nothing, and what it protected would be open. A
// RequestAuth applied with the Route is checked by requestAuth instead.
func (c *references) routeKeepsAuthRules(o *Object, s *RouteSpec) {
	ns := namespaceOf(o)
	key := objectKey{kind: RequestAuthKind.Name, namespace: ns, name: s.Service}
	if _, applied := c.applied[key]; applied || c.known == nil {
		return
	}
	stored, ok := c.known(key.kind, ns, s.Service)
	if !ok || stored == nil {
		return
	}
	ra, ok := stored.Spec.(*RequestAuthSpec)
	if !ok {
		return
	}
	for i := range ra.Rules {
		for j, name := range ra.Rules[i].RouteRules {
			if !hasRule(s, name) {
				c.fail(o, NewPath("spec").Child("rules"), "has no rule named %s, which RequestAuth %s/%s names in spec.rules[%d].routeRules[%d]: keep the rule, or change the RequestAuth first",
					quote(name), ns, s.Service, i, j)
			}
		}
	}
}
