package v1alpha1

// rateLimit checks that a RateLimit is not for a tcp service: its limits
// count HTTP requests. A RateLimit for a service not known yet is fine: it
// waits for the service, as a DestinationPolicy does. A limit's routeRule
// is not checked here: until the Route has that rule, the limit counts
// nothing.
func (c *references) rateLimit(o *Object, _ *RateLimitSpec) {
	service := o.Metadata.Name
	proto, ok := c.service(namespaceOf(o), service)
	if ok && !proto.IsHTTP() {
		c.fail(o, NewPath("spec").Child("limits"), "service %s speaks tcp: rate limits count HTTP requests", quote(service))
	}
}
