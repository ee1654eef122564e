package v1alpha1

import (
	"strconv"
	"strings"
)

// AccessPolicyKind is the AccessPolicy resource: who may send what to one
// service. A destination may have several. A request that a DENY rule of
// any of them matches is refused; otherwise, when the destination has any
// ALLOW rule, a request that none matches is refused too (default deny).
var AccessPolicyKind = Kind{
	Name:       "AccessPolicy",
	Plural:     "accesspolicies",
	Aliases:    []string{"ap"},
	Namespaced: true,
	NewSpec:    func() Spec { return new(AccessPolicySpec) },
}

func init() { Register(AccessPolicyKind) }

// Bounds of an AccessPolicy.
const (
	maxAccessRules   = 256
	maxClaimName     = 128
	maxAccessValue   = 512
	claimKeyPrefix   = "claims."
	spiffeScheme     = "spiffe://"
	anyValueWildcard = "*"
)

// AccessPolicySpec says which requests (for a tcp service, which
// connections) may reach a service.
type AccessPolicySpec struct {
	// Service is the destination the policy guards, a service in the
	// policy's namespace.
	Service string `json:"service"`
	// Action is ALLOW (the default) or DENY: what happens to a request that
	// one of the rules matches.
	Action AccessAction `json:"action,omitempty"`
	// Rules match requests; a request matched by any rule gets the action.
	Rules []AccessRule `json:"rules"`
}

// AccessAction is what an AccessPolicy does with the requests it matches.
type AccessAction string

const (
	AccessAllow AccessAction = "ALLOW"
	AccessDeny  AccessAction = "DENY"
)

var accessActions = []AccessAction{AccessAllow, AccessDeny}

// AccessRule matches a request when its source matches one of From, the
// request one of To, and every condition of When holds. An empty From
// matches every source, an empty To every request.
type AccessRule struct {
	// Name, if set, names the rule in the weft-denied-by header and in
	// logs: a DNS label, unique in the policy.
	Name string          `json:"name,omitempty"`
	From []AccessSource  `json:"from,omitempty"`
	To   []AccessRequest `json:"to,omitempty"`
	// When lists conditions on the end user's verified JWT claims, which a
	// RequestAuth of the service checks; all must hold.
	When []AccessCondition `json:"when,omitempty"`
}

// AccessSource is one kind of source, exactly one of the fields set.
type AccessSource struct {
	// Identities are SPIFFE IDs, such as spiffe://weft.local/ns/shop/sa/web.
	// A '*' at the start or the end matches any suffix or prefix; "*" alone
	// matches every mesh identity.
	Identities []string `json:"identities,omitempty"`
	// Services are mesh services: "name" (in the policy's namespace) or
	// "namespace/name"; either part may be "*".
	Services []string `json:"services,omitempty"`
	// Namespaces match every service of a namespace; "*" matches every
	// mesh identity.
	Namespaces []string `json:"namespaces,omitempty"`
	// Unauthenticated, if true, matches clients without a mesh identity:
	// plaintext clients of a PERMISSIVE service.
	Unauthenticated bool `json:"unauthenticated,omitempty"`
}

// AccessRequest matches a request when each part that is set matches; each
// part matches when any of its values does. At least one part must be set.
type AccessRequest struct {
	// Methods are upper-case HTTP methods, such as GET.
	Methods []string `json:"methods,omitempty"`
	// Paths match the request path, normalised (dot segments resolved,
	// repeated slashes merged) and without the query. Prefixes match whole
	// segments, as in Routes.
	Paths []PathMatch `json:"paths,omitempty"`
	// Headers must all match.
	Headers []HeaderMatch `json:"headers,omitempty"`
	// Ports are ports of the destination Service.
	Ports []int32 `json:"ports,omitempty"`
}

// AccessCondition is a condition on a verified JWT claim.
type AccessCondition struct {
	// Key is "claims.<name>", such as claims.group.
	Key string `json:"key"`
	// Values, if set: the claim must equal one of them, or (for a list
	// claim such as groups) hold one of them. A '*' at the start or end
	// matches any suffix or prefix.
	Values []string `json:"values,omitempty"`
	// NotValues, if set: the claim must match none of them.
	NotValues []string `json:"notValues,omitempty"`
}

// Claim is the claim name of a condition's key.
func (c *AccessCondition) Claim() string { return strings.TrimPrefix(c.Key, claimKeyPrefix) }

// IsHTTPOnly reports whether a rule needs HTTP to be evaluated: request
// attributes other than ports, or JWT claims.
func (r *AccessRule) IsHTTPOnly() bool {
	if len(r.When) > 0 {
		return true
	}
	for _, t := range r.To {
		if len(t.Methods) > 0 || len(t.Paths) > 0 || len(t.Headers) > 0 {
			return true
		}
	}
	return false
}

// RuleName is how the rule at index i of the policy namespace/name is named
// to users and in the weft-denied-by header: "<namespace>/<policy>" for
// the only rule of a policy when unnamed, with "/<rule name>" or "[i]"
// otherwise.
func (s *AccessPolicySpec) RuleName(namespace, name string, i int) string {
	base := namespace + "/" + name
	switch {
	case s.Rules[i].Name != "":
		return base + "/" + s.Rules[i].Name
	case len(s.Rules) == 1:
		return base
	}
	return base + "[" + strconv.Itoa(i) + "]"
}

// Default makes the action ALLOW when unset.
func (s *AccessPolicySpec) Default() {
	if s.Action == "" {
		s.Action = AccessAllow
	}
}

// Validate checks a defaulted AccessPolicySpec.
func (s *AccessPolicySpec) Validate(path *Path) ErrorList {
	errs := validateServiceName(path.Child("service"), s.Service)
	if a := s.Action; a != AccessAllow && a != AccessDeny {
		errs = append(errs, NotSupported(path.Child("action"), a, accessActions))
	}
	rules := path.Child("rules")
	switch {
	case len(s.Rules) == 0:
		return append(errs, Invalid(rules, "at least one rule is required: a rule with nothing set matches every request"))
	case len(s.Rules) > maxAccessRules:
		return append(errs, Invalid(rules, "has %d rules: at most %d are allowed", len(s.Rules), maxAccessRules))
	}
	names := make(map[string]int, len(s.Rules))
	for i := range s.Rules {
		r, at := &s.Rules[i], rules.Index(i)
		if r.Name != "" {
			switch first, dup := names[r.Name]; {
			case !isDNSLabel(r.Name):
				errs = append(errs, Invalid(at.Child("name"), "%s is not a valid rule name: use %s", quote(r.Name), dnsLabelRule))
			case dup:
				errs = append(errs, Invalid(at.Child("name"), "duplicate rule name %s: %s has it too", quote(r.Name), rules.Index(first)))
			default:
				names[r.Name] = i
			}
		}
		errs = append(errs, r.validate(at)...)
	}
	return errs
}

func (r *AccessRule) validate(path *Path) ErrorList {
	var errs ErrorList
	for i := range r.From {
		errs = append(errs, r.From[i].validate(path.Child("from").Index(i))...)
	}
	for i := range r.To {
		errs = append(errs, r.To[i].validate(path.Child("to").Index(i))...)
	}
	for i := range r.When {
		errs = append(errs, r.When[i].validate(path.Child("when").Index(i))...)
	}
	return errs
}

func (s *AccessSource) validate(path *Path) ErrorList {
	set := setFields(field{"identities", len(s.Identities) > 0}, field{"services", len(s.Services) > 0},
		field{"namespaces", len(s.Namespaces) > 0}, field{"unauthenticated", s.Unauthenticated})
	if len(set) != 1 {
		return ErrorList{exactlyOne(path, set, "identities, services, namespaces or unauthenticated")}
	}
	var errs ErrorList
	for i, id := range s.Identities {
		at := path.Child("identities").Index(i)
		body := strings.TrimSuffix(strings.TrimPrefix(id, "*"), "*")
		switch {
		case id == anyValueWildcard:
		case len(id) > maxAccessValue:
			errs = append(errs, Invalid(at, "is %d characters long: at most %d are allowed", len(id), maxAccessValue))
		case strings.HasPrefix(id, "*") && strings.HasSuffix(id, "*"):
			errs = append(errs, Invalid(at, "%s has '*' at both ends: use one, at the start or the end", quote(id)))
		case body == "" || strings.Contains(body, "*"):
			errs = append(errs, Invalid(at, "%s: '*' may only stand at the start or the end", quote(id)))
		case !strings.HasPrefix(id, "*") && !strings.HasPrefix(id, spiffeScheme):
			errs = append(errs, Invalid(at, "%s is not a SPIFFE ID: use spiffe://<trust domain>/ns/<namespace>/sa/<service>", quote(id)))
		case strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			errs = append(errs, Invalid(at, "%s must not hold spaces or control characters", quote(id)))
		}
	}
	for i, svc := range s.Services {
		at := path.Child("services").Index(i)
		ns, name, qualified := strings.Cut(svc, "/")
		if !qualified {
			ns, name = "", svc
		}
		switch {
		case qualified && ns != anyValueWildcard && !isDNSLabel(ns):
			errs = append(errs, Invalid(at, "%s: namespace %s is not valid: use %s, or '*'", quote(svc), quote(ns), dnsLabelRule))
		case name != anyValueWildcard && !isDNSLabel(name):
			errs = append(errs, Invalid(at, "%s: service %s is not valid: use \"name\" or \"namespace/name\", each %s, or '*'", quote(svc), quote(name), dnsLabelRule))
		case !qualified && name == anyValueWildcard:
			errs = append(errs, Invalid(at, "\"*\" is every service of the policy's namespace: write it as a namespace"))
		}
	}
	for i, ns := range s.Namespaces {
		if ns != anyValueWildcard && !isDNSLabel(ns) {
			errs = append(errs, Invalid(path.Child("namespaces").Index(i), "%s is not a valid namespace: use %s, or '*'", quote(ns), dnsLabelRule))
		}
	}
	return errs
}

func (r *AccessRequest) validate(path *Path) ErrorList {
	if len(r.Methods) == 0 && len(r.Paths) == 0 && len(r.Headers) == 0 && len(r.Ports) == 0 {
		return ErrorList{Invalid(path, "is empty: set methods, paths, headers or ports, or leave to out to match every request")}
	}
	var errs ErrorList
	for i, m := range r.Methods {
		if !isMethod(m) {
			errs = append(errs, Invalid(path.Child("methods").Index(i), "%s is not a valid method: use an upper-case HTTP method such as GET or POST", quote(m)))
		}
	}
	for i := range r.Paths {
		errs = append(errs, r.Paths[i].validate(path.Child("paths").Index(i))...)
	}
	for i := range r.Headers {
		errs = append(errs, r.Headers[i].validate(path.Child("headers").Index(i))...)
	}
	for i, p := range r.Ports {
		if p < 1 || p > 65535 {
			errs = append(errs, Invalid(path.Child("ports").Index(i), "must be between 1 and 65535"))
		}
	}
	return errs
}

func (c *AccessCondition) validate(path *Path) ErrorList {
	var errs ErrorList
	key := path.Child("key")
	claim, ok := strings.CutPrefix(c.Key, claimKeyPrefix)
	switch {
	case c.Key == "":
		errs = append(errs, Required(key))
	case !ok:
		errs = append(errs, Invalid(key, "%s is not supported: use claims.<name>, such as claims.group", quote(c.Key)))
	case claim == "" || len(claim) > maxClaimName || strings.ContainsFunc(claim, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		errs = append(errs, Invalid(key, "%s: the claim name must be 1 to %d characters, without spaces or control characters", quote(c.Key), maxClaimName))
	}
	if len(c.Values) == 0 && len(c.NotValues) == 0 {
		errs = append(errs, Invalid(path, "set values, notValues or both"))
	}
	for _, list := range []struct {
		name   string
		values []string
	}{{"values", c.Values}, {"notValues", c.NotValues}} {
		for i, v := range list.values {
			at := path.Child(list.name).Index(i)
			body := strings.TrimSuffix(strings.TrimPrefix(v, "*"), "*")
			switch {
			case v == "":
				errs = append(errs, Invalid(at, "must not be empty"))
			case len(v) > maxAccessValue:
				errs = append(errs, Invalid(at, "is %d characters long: at most %d are allowed", len(v), maxAccessValue))
			case v != anyValueWildcard && (strings.Contains(body, "*") || (body == "" && v != "*") ||
				(strings.HasPrefix(v, "*") && strings.HasSuffix(v, "*"))):
				errs = append(errs, Invalid(at, "%s: '*' may only stand alone, at the start or at the end", quote(v)))
			}
		}
	}
	return errs
}

var _ Spec = (*AccessPolicySpec)(nil)
