package v1alpha1

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// AccessEnv is what AccessPolicyWarnings checks a policy against: the
// destination as the mesh serves it, and its DENY policies.
type AccessEnv struct {
	TrustDomain string
	// ServedPort is the Service port the destination's proxies serve (its
	// first), 0 when it has no Service resource.
	ServedPort int32
	// Mode is the destination's effective mTLS mode.
	Mode MTLSMode
	// RequestAuth reports whether the destination has a RequestAuth, the
	// only source of verified JWT claims.
	RequestAuth bool
	// Deny holds the destination's DENY policies by name.
	Deny map[string]*AccessPolicySpec
}

// AccessPolicyWarnings lists what of the valid AccessPolicy namespace/name
// can never match: rules for ports the destination does not serve,
// unauthenticated sources of a STRICT service, claims of a service without
// a RequestAuth, and ALLOW rules whose every request a DENY rule refuses.
// The coverage check is conservative: a warning is certain, its absence is
// not a proof that a rule can match.
func AccessPolicyWarnings(namespace, name string, p *AccessPolicySpec, env AccessEnv) []string {
	var out []string
	for i := range p.Rules {
		r := &p.Rules[i]
		at := fmt.Sprintf("rules[%d]", i)
		if r.Name != "" {
			at += " (" + r.Name + ")"
		}
		dead := false
		if len(r.To) > 0 {
			deadTo := 0
			for j, t := range r.To {
				if len(t.Ports) == 0 || slices.Contains(t.Ports, env.ServedPort) {
					continue
				}
				deadTo++
				served := fmt.Sprintf("serves port %d", env.ServedPort)
				if env.ServedPort == 0 {
					served = "has no Service resource, so no port"
				}
				out = append(out, fmt.Sprintf("%s.to[%d] can never match: service %s %s, not %s", at, j, p.Service, served, joinPorts(t.Ports)))
			}
			dead = deadTo == len(r.To)
		}
		if len(r.From) > 0 && env.Mode != MTLSPermissive {
			deadFrom := 0
			for j, s := range r.From {
				if s.Unauthenticated {
					deadFrom++
					out = append(out, fmt.Sprintf("%s.from[%d] can never match: service %s is STRICT, so no request is unauthenticated", at, j, p.Service))
				}
			}
			dead = dead || deadFrom == len(r.From)
		}
		if len(r.When) > 0 && !env.RequestAuth {
			dead = true
			out = append(out, fmt.Sprintf("%s.when can never hold: service %s has no RequestAuth, so no request carries verified JWT claims", at, p.Service))
		}
		if dead {
			out = append(out, fmt.Sprintf("%s can never match", at))
			continue
		}
		if p.Action != AccessAllow {
			continue
		}
		c := coverage{trustDomain: env.TrustDomain, namespace: namespace}
		if by := c.shadowedBy(r, namespace, env.Deny); by != "" {
			out = append(out, fmt.Sprintf("%s is shadowed: every request it allows is denied by %s", at, by))
		}
	}
	return out
}

// shadowedBy names the first DENY rule, in policy name order, that matches
// every request the ALLOW rule r matches, or returns "".
func (c coverage) shadowedBy(r *AccessRule, namespace string, deny map[string]*AccessPolicySpec) string {
	for _, name := range slices.Sorted(maps.Keys(deny)) {
		d := deny[name]
		for k := range d.Rules {
			if c.rule(&d.Rules[k], r) {
				return d.RuleName(namespace, name, k)
			}
		}
	}
	return ""
}

func joinPorts(ports []int32) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ", ")
}

// coverage decides whether a DENY rule matches every request an ALLOW
// rule matches.
type coverage struct{ trustDomain, namespace string }

func (c coverage) rule(deny, allow *AccessRule) bool {
	if len(deny.When) > 0 {
		return false
	}
	if len(deny.From) > 0 {
		if len(allow.From) == 0 {
			return false
		}
		for i := range allow.From {
			if !slices.ContainsFunc(deny.From, func(d AccessSource) bool { return c.source(&d, &allow.From[i]) }) {
				return false
			}
		}
	}
	if len(deny.To) > 0 {
		if len(allow.To) == 0 {
			return false
		}
		for i := range allow.To {
			if !slices.ContainsFunc(deny.To, func(d AccessRequest) bool { return request(&d, &allow.To[i]) }) {
				return false
			}
		}
	}
	return true
}

// idPattern is what a source value matches of a SPIFFE ID.
type idPattern struct {
	kind  byte // '*' any, 'p' prefix, 's' suffix, '=' exact
	value string
}

func (p idPattern) covers(q idPattern) bool {
	switch p.kind {
	case '*':
		return true
	case 'p':
		return (q.kind == 'p' || q.kind == '=') && strings.HasPrefix(q.value, p.value)
	case 's':
		return (q.kind == 's' || q.kind == '=') && strings.HasSuffix(q.value, p.value)
	}
	return q.kind == '=' && q.value == p.value
}

// patterns are the ID patterns of an authenticated source.
func (c coverage) patterns(s *AccessSource) []idPattern {
	var out []idPattern
	nsPrefix := func(ns string) string { return "spiffe://" + c.trustDomain + "/ns/" + ns + "/sa/" }
	for _, id := range s.Identities {
		switch {
		case id == "*":
			out = append(out, idPattern{'*', ""})
		case strings.HasSuffix(id, "*"):
			out = append(out, idPattern{'p', strings.TrimSuffix(id, "*")})
		case strings.HasPrefix(id, "*"):
			out = append(out, idPattern{'s', strings.TrimPrefix(id, "*")})
		default:
			out = append(out, idPattern{'=', id})
		}
	}
	for _, svc := range s.Services {
		ns, name, qualified := strings.Cut(svc, "/")
		if !qualified {
			ns, name = c.namespace, svc
		}
		switch {
		case ns == "*" && name == "*":
			out = append(out, idPattern{'*', ""})
		case ns == "*":
			out = append(out, idPattern{'s', "/sa/" + name})
		case name == "*":
			out = append(out, idPattern{'p', nsPrefix(ns)})
		default:
			out = append(out, idPattern{'=', nsPrefix(ns) + name})
		}
	}
	for _, ns := range s.Namespaces {
		if ns == "*" {
			out = append(out, idPattern{'*', ""})
		} else {
			out = append(out, idPattern{'p', nsPrefix(ns)})
		}
	}
	return out
}

func (c coverage) source(deny, allow *AccessSource) bool {
	if deny.Unauthenticated || allow.Unauthenticated {
		return deny.Unauthenticated && allow.Unauthenticated
	}
	dp := c.patterns(deny)
	for _, a := range c.patterns(allow) {
		if !slices.ContainsFunc(dp, func(d idPattern) bool { return d.covers(a) }) {
			return false
		}
	}
	return true
}

func request(deny, allow *AccessRequest) bool {
	subset := func(d, a []string) bool {
		return len(d) == 0 || (len(a) > 0 && !slices.ContainsFunc(a, func(v string) bool { return !slices.Contains(d, v) }))
	}
	if !subset(deny.Methods, allow.Methods) {
		return false
	}
	if len(deny.Ports) > 0 && (len(allow.Ports) == 0 || slices.ContainsFunc(allow.Ports, func(p int32) bool { return !slices.Contains(deny.Ports, p) })) {
		return false
	}
	if len(deny.Paths) > 0 {
		if len(allow.Paths) == 0 {
			return false
		}
		for _, a := range allow.Paths {
			if !slices.ContainsFunc(deny.Paths, func(d PathMatch) bool { return pathCovers(d, a) }) {
				return false
			}
		}
	}
	for _, d := range deny.Headers {
		if !slices.Contains(allow.Headers, d) {
			return false
		}
	}
	return true
}

// pathCovers reports whether every path a matches, d matches too.
func pathCovers(d, a PathMatch) bool {
	under := func(p, prefix string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }
	switch {
	case d.Prefix == "/":
		return true
	case d.Prefix != "":
		return (a.Exact != "" && under(a.Exact, d.Prefix)) || (a.Prefix != "" && under(a.Prefix, d.Prefix))
	case d.Exact != "":
		return a.Exact == d.Exact
	}
	return a.Regex == d.Regex
}
