package v1alpha1

// validateGatewayAttachment checks a Route's gateways and hosts: both or
// neither, each gateway a valid name, each host one a Gateway may serve.
func (s *RouteSpec) validateGatewayAttachment(path *Path) ErrorList {
	var errs ErrorList
	gp, hp := path.Child("gateways"), path.Child("hosts")
	switch {
	case len(s.Gateways) == 0 && len(s.Hosts) > 0:
		return ErrorList{Invalid(hp, "is only used with gateways: a mesh Route governs its service whatever the host")}
	case len(s.Gateways) > 0 && len(s.Hosts) == 0:
		return ErrorList{Invalid(hp, "at least one host is required when the Route attaches to gateways")}
	case len(s.Gateways) > maxGatewayListeners:
		return ErrorList{Invalid(gp, "at most %d gateways are allowed, got %d", maxGatewayListeners, len(s.Gateways))}
	case len(s.Hosts) > maxGatewayHosts:
		return ErrorList{Invalid(hp, "at most %d hosts are allowed, got %d", maxGatewayHosts, len(s.Hosts))}
	}
	seen := map[string]int{}
	for i, g := range s.Gateways {
		if first, dup := seen[g]; dup {
			errs = append(errs, Invalid(gp.Index(i), "duplicate gateway %s: %s has it too", quote(g), gp.Index(first)))
			continue
		}
		seen[g] = i
		if !isDNSName(g, maxSubdomainLength) {
			errs = append(errs, Invalid(gp.Index(i), "%s is not a valid Gateway name: use a DNS-1123 name", quote(g)))
		}
	}
	return append(errs, validateHostList(hp, s.Hosts)...)
}
