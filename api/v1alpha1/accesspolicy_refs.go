package v1alpha1

// accessPolicy checks that an AccessPolicy names a known service and asks
// of a tcp service only what a connection has: its source and the port.
func (c *references) accessPolicy(o *Object, s *AccessPolicySpec) {
	ns, spec := namespaceOf(o), NewPath("spec")
	proto, ok := c.service(ns, s.Service)
	if !ok {
		c.unknownService(o, spec.Child("service"), ns, s.Service)
		return
	}
	if proto.IsHTTP() {
		return
	}
	for i := range s.Rules {
		r, at := &s.Rules[i], spec.Child("rules").Index(i)
		if len(r.When) > 0 {
			c.fail(o, at.Child("when"), "service %s speaks tcp: a connection carries no JWT claims", quote(s.Service))
		}
		for j, t := range r.To {
			for _, f := range []struct {
				name string
				set  bool
			}{{"methods", len(t.Methods) > 0}, {"paths", len(t.Paths) > 0}, {"headers", len(t.Headers) > 0}} {
				if f.set {
					c.fail(o, at.Child("to").Index(j).Child(f.name), "service %s speaks tcp: a connection has no %s; match its source or port", quote(s.Service), f.name)
				}
			}
		}
	}
}
