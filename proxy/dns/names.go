package dns

import "strings"

// DefaultDomain is the mesh's DNS domain: a service is
// <service>.<namespace>.svc.<domain>.
const DefaultDomain = "weft"

// meshName returns the service and namespace a query name stands for, as a
// workload in namespace podNS would write it: `payments` (its own
// namespace), `payments.default`, `payments.default.svc`,
// `payments.default.svc.weft`, and the names a stub resolver makes of those
// by appending the search path Kubernetes-style resolv.conf files carry
// (`<podNS>.svc.weft`, `svc.weft`, `weft`). ok is false for any other name.
// name may end with the root dot; it is compared case-insensitively.
func meshName(name, podNS, domain string) (service, namespace string, ok bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name == "" || podNS == "" {
		return "", "", false
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" {
			return "", "", false
		}
	}
	// Strip the mesh domain and what the search path added, if any.
	if suffix := strings.Split(domain, "."); hasSuffix(labels, suffix) {
		labels = labels[:len(labels)-len(suffix)]
		switch {
		case len(labels) >= 3 && labels[len(labels)-1] == "svc" && labels[len(labels)-2] == podNS && len(labels) != 3:
			// <name>.<podNS>.svc.weft, where <name> is svc.ns or svc.ns.svc.
			labels = labels[:len(labels)-2]
		case len(labels) == 3 && labels[2] == "svc":
			// svc.ns.svc.weft: the full name.
			return labels[0], labels[1], true
		case len(labels) >= 3 && labels[len(labels)-1] == "svc":
			// <name>.svc.weft, where <name> is svc.ns.svc.
			labels = labels[:len(labels)-1]
		case len(labels) == 2 && labels[1] != "svc":
			// payments.default.weft: svc.ns with the bare domain appended.
		default:
			return "", "", false
		}
		if len(labels) == 1 {
			// A bare name with only the domain appended is not ours:
			// payments.weft would be a service named after a namespace.
			return "", "", false
		}
	}
	switch {
	case len(labels) == 1:
		return labels[0], podNS, true
	case len(labels) == 2:
		return labels[0], labels[1], true
	case len(labels) == 3 && labels[2] == "svc":
		return labels[0], labels[1], true
	}
	return "", "", false
}

func hasSuffix(labels, suffix []string) bool {
	if len(suffix) == 0 || len(labels) <= len(suffix) {
		return false
	}
	tail := labels[len(labels)-len(suffix):]
	for i := range suffix {
		if tail[i] != suffix[i] {
			return false
		}
	}
	return true
}
