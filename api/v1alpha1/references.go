package v1alpha1

import "strings"

// CheckReferences checks what validating one object at a time cannot: that
// each Route among objs names services that exist and subsets that their
// DestinationPolicy defines, and asks of a tcp service nothing but a split
// of its connections; and that no DestinationPolicy among objs asks a tcp
// service for what only HTTP has.
//
// objs are the objects being applied, defaulted and valid; each stands in
// for the stored object of the same kind, namespace and name. known looks
// up a stored object. workloads reports whether workloads of a service are
// registered. A service is known when it has a Service resource or
// registered workloads; without a Service resource it speaks http. Either
// func may be nil, for an empty store or no registered workloads.
//
// Each error's Field starts with the Ref of its object, as in
// "Route default/catalog: spec.rules[0].backends[1].subset".
func CheckReferences(objs []*Object,
	known func(kind, namespace, name string) (*Object, bool),
	workloads func(namespace, service string) bool,
) ErrorList {
	c := &references{applied: make(map[objectKey]*Object, len(objs)), known: known, workloads: workloads}
	for _, o := range objs {
		c.applied[keyOf(o)] = o
	}
	for _, o := range objs {
		switch spec := o.Spec.(type) {
		case *RouteSpec:
			c.route(o, spec)
			c.routeKeepsAuthRules(o, spec)
		case *DestinationPolicySpec:
			c.destinationPolicy(o, spec)
		case *AccessPolicySpec:
			c.accessPolicy(o, spec)
		case *RequestAuthSpec:
			c.requestAuth(o, spec)
		case *RateLimitSpec:
			c.rateLimit(o, spec)
		}
	}
	return c.errs
}

type objectKey struct{ kind, namespace, name string }

func keyOf(o *Object) objectKey {
	return objectKey{kind: o.Kind, namespace: namespaceOf(o), name: o.Metadata.Name}
}

// namespaceOf is the object's namespace, defaulted as Object.Default does.
func namespaceOf(o *Object) string {
	if o.Metadata.Namespace == "" {
		return DefaultNamespace
	}
	return o.Metadata.Namespace
}

// references holds what CheckReferences has found so far.
type references struct {
	applied   map[objectKey]*Object
	known     func(kind, namespace, name string) (*Object, bool)
	workloads func(namespace, service string) bool
	errs      ErrorList
}

// get finds an object, preferring the one being applied.
func (c *references) get(kind, namespace, name string) (*Object, bool) {
	if o, ok := c.applied[objectKey{kind: kind, namespace: namespace, name: name}]; ok {
		return o, true
	}
	if c.known == nil {
		return nil, false
	}
	o, ok := c.known(kind, namespace, name)
	return o, ok && o != nil
}

// service reports whether a service is known and the protocol it speaks:
// that of its first port, the one a workload serves.
func (c *references) service(namespace, name string) (Protocol, bool) {
	if o, ok := c.get("Service", namespace, name); ok {
		if s, ok := o.Spec.(*ServiceSpec); ok && len(s.Ports) > 0 && s.Ports[0].Protocol != "" {
			return s.Ports[0].Protocol, true
		}
		return ProtocolHTTP, true
	}
	if c.workloads != nil && c.workloads(namespace, name) {
		return ProtocolHTTP, true
	}
	return "", false
}

// fail records a problem of the object o at path.
func (c *references) fail(o *Object, path *Path, format string, args ...any) {
	fe := Invalid(path, format, args...)
	fe.Field = o.Ref() + ": " + fe.Field
	c.errs = append(c.errs, fe)
}

func (c *references) route(o *Object, s *RouteSpec) {
	ns, spec := namespaceOf(o), NewPath("spec")
	proto, ok := c.service(ns, s.Service)
	if !ok {
		c.unknownService(o, spec.Child("service"), ns, s.Service)
	}
	tcp := ok && !proto.IsHTTP()
	for i := range s.Rules {
		r, at := &s.Rules[i], spec.Child("rules").Index(i)
		if tcp {
			for _, f := range httpOnly(r) {
				c.fail(o, at.Child(f), "service %s speaks tcp: a Route for it may only split connections between backends", quote(s.Service))
			}
		}
		for j, b := range r.Backends {
			c.target(o, at.Child("backends").Index(j), s.Service, proto, b.Service, b.Subset)
		}
		if m := r.Mirror; m != nil && !tcp {
			c.target(o, at.Child("mirror"), s.Service, proto, m.Service, m.Subset)
		}
	}
}

// httpOnly names the fields of r that only HTTP traffic can have.
func httpOnly(r *RouteRule) []string {
	var names []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"match", len(r.Match) > 0},
		{"timeout", r.Timeout != nil},
		{"retries", r.Retries != nil},
		{"fault", r.Fault != nil},
		{"mirror", r.Mirror != nil},
		{"requestHeaders", r.RequestHeaders != nil},
		{"responseHeaders", r.ResponseHeaders != nil},
	} {
		if f.set {
			names = append(names, f.name)
		}
	}
	return names
}

// target checks the service and subset of a backend or mirror at path, in
// a Route for routeService, which speaks routeProto (empty when unknown).
func (c *references) target(o *Object, path *Path, routeService string, routeProto Protocol, service, subset string) {
	ns := namespaceOf(o)
	if service == "" {
		service = routeService
	}
	proto, ok := c.service(ns, service)
	switch {
	case service == routeService:
		// Its existence is reported once, at spec.service.
	case !ok:
		c.unknownService(o, path.Child("service"), ns, service)
	case routeProto != "" && proto.IsHTTP() != routeProto.IsHTTP():
		c.fail(o, path.Child("service"), "service %s speaks %s, but the Route's service %s speaks %s: traffic cannot cross between tcp and HTTP",
			quote(service), proto, quote(routeService), routeProto)
	}
	if subset == "" || !ok {
		return
	}
	var spec *DestinationPolicySpec
	if dp, found := c.get(DestinationPolicyKind.Name, ns, service); found {
		spec, _ = dp.Spec.(*DestinationPolicySpec)
	}
	if spec == nil {
		c.fail(o, path.Child("subset"), "subset %s is not defined: service %s has no DestinationPolicy", quote(subset), quote(service))
		return
	}
	var names []string
	for _, ss := range spec.Subsets {
		if ss.Name == subset {
			return
		}
		names = append(names, ss.Name)
	}
	defined := "which defines no subsets"
	if len(names) > 0 {
		defined = "whose subsets are " + strings.Join(names, ", ")
	}
	c.fail(o, path.Child("subset"), "subset %s is not defined by DestinationPolicy %s/%s, %s", quote(subset), ns, service, defined)
}

func (c *references) unknownService(o *Object, path *Path, namespace, service string) {
	c.fail(o, path, "unknown service %s: namespace %s has no Service of that name and no workload of it is registered",
		quote(service), quote(namespace))
}

// destinationPolicy checks that a tcp service's policy asks for nothing
// only HTTP has. A policy for a service not known yet is fine: it waits for
// the service.
func (c *references) destinationPolicy(o *Object, s *DestinationPolicySpec) {
	service := o.Metadata.Name
	proto, ok := c.service(namespaceOf(o), service)
	if !ok || proto.IsHTTP() {
		return
	}
	spec := NewPath("spec")
	if s.HealthCheck != nil {
		c.fail(o, spec.Child("healthCheck"), "service %s speaks tcp: health checks are HTTP or gRPC requests", quote(service))
	}
	if rh := s.LoadBalancer.RingHash; rh != nil {
		at := spec.Child("loadBalancer").Child("ringHash")
		if rh.Header != "" {
			c.fail(o, at.Child("header"), "service %s speaks tcp: a connection has no headers; hash on sourceIP", quote(service))
		}
		if rh.Cookie != nil {
			c.fail(o, at.Child("cookie"), "service %s speaks tcp: a connection has no cookies; hash on sourceIP", quote(service))
		}
	}
}
