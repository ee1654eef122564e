package v1alpha1

import (
	"strings"
	"time"
)

// RouteKind is the Route resource: how the requests (or, for a tcp service,
// the connections) sent to one service are matched, split between backends,
// retried, delayed or aborted, mirrored and given header edits.
var RouteKind = Kind{
	Name:       "Route",
	Plural:     "routes",
	Namespaced: true,
	NewSpec:    func() Spec { return new(RouteSpec) },
}

func init() {
	Register(RouteKind)
	Register(DestinationPolicyKind)
}

// Bounds and defaults of a Route. Durations are bounded so that a typo
// ("5000s" for "5000ms") is caught rather than applied.
const (
	maxWeight            = 1_000_000
	maxRetryAttempts     = 10
	minTimeout           = time.Millisecond
	maxTimeout           = 24 * time.Hour
	defaultBackoffBase   = 25 * time.Millisecond
	maxBackoffBase       = time.Minute
	maxBackoffMax        = 5 * time.Minute
	maxFaultDelay        = time.Hour
	defaultBudgetPercent = 20
	defaultMinRetryConc  = 3
	maxRegexLength       = 1024
	maxHeaderNameLength  = 256
	maxQueryParamLength  = 256
	maxMethodLength      = 32
	fullPercentage       = 100.0
)

// RouteSpec says how traffic to one service is routed. Rules are tried in
// order and the first whose match fits a request takes it; a rule without
// match fits every request, so it can only be the last. A request that no
// rule fits goes to the service as if it had no Route.
//
// For a tcp service a Route may only split connections: one rule, with
// backends and nothing else.
type RouteSpec struct {
	// Service is the destination whose traffic the Route governs, a service
	// in the Route's namespace. Backends and mirrors that name no service
	// are this one.
	Service string `json:"service"`
	// Gateways, if set, attaches the Route to these Gateways (in the Route's
	// namespace) instead of the mesh: it routes the north-south requests
	// for Hosts that arrive at them, and leaves the service's mesh traffic
	// alone, as an Istio VirtualService with gateways does.
	Gateways []string `json:"gateways,omitempty"`
	// Hosts are the host names, as the Gateways' listeners name them
	// (exact, *.example.com or *), whose requests the Route takes. Required
	// with gateways, not allowed without.
	Hosts []string `json:"hosts,omitempty"`
	// Rules are tried in order; the first that fits a request takes it.
	Rules []RouteRule `json:"rules"`
}

// AttachesToGateways reports whether the Route routes gateway traffic
// rather than the mesh traffic of its service.
func (s *RouteSpec) AttachesToGateways() bool { return len(s.Gateways) > 0 }

// RouteRule is one rule of a Route: which requests it takes and what
// happens to them.
type RouteRule struct {
	// Name, if set, names the rule in status and metrics: a DNS label,
	// unique in the Route.
	Name string `json:"name,omitempty"`
	// Match lists alternatives: the rule takes a request that fits any of
	// them. A rule without match takes every request.
	Match []RouteMatch `json:"match,omitempty"`
	// Backends share the rule's requests in proportion to their weights.
	Backends []Backend `json:"backends"`
	// Timeout bounds a whole request, retries included: from 1ms to 24h.
	// Unset, the Route sets no timeout.
	Timeout *Duration `json:"timeout,omitempty"`
	// Retries, if set, retries failed requests.
	Retries *RetryPolicy `json:"retries,omitempty"`
	// Fault, if set, delays or aborts some requests, to test how clients
	// cope.
	Fault *Fault `json:"fault,omitempty"`
	// Mirror, if set, sends a copy of some requests to another destination
	// and ignores its responses.
	Mirror *Mirror `json:"mirror,omitempty"`
	// RequestHeaders edits the headers of requests sent to the backends.
	RequestHeaders *HeaderEdits `json:"requestHeaders,omitempty"`
	// ResponseHeaders edits the headers of responses sent back to the client.
	ResponseHeaders *HeaderEdits `json:"responseHeaders,omitempty"`
}

// RouteMatch is one condition on a request; every part that is set must
// hold. At least one part must be set: a rule that takes every request
// leaves out match instead.
type RouteMatch struct {
	// Path matches the request path, without the query string.
	Path *PathMatch `json:"path,omitempty"`
	// Method matches the request method exactly, such as GET.
	Method string `json:"method,omitempty"`
	// Headers must all match.
	Headers []HeaderMatch `json:"headers,omitempty"`
	// QueryParams must all match.
	QueryParams []QueryParamMatch `json:"queryParams,omitempty"`
}

// PathMatch matches the request path in exactly one way.
type PathMatch struct {
	// Exact matches the path exactly, such as /healthz.
	Exact string `json:"exact,omitempty"`
	// Prefix matches the path and every path below it, segment by segment:
	// /api matches /api and /api/v1 but not /apis. It must not end with '/'
	// (but may be "/", which matches every path).
	Prefix string `json:"prefix,omitempty"`
	// Regex is an RE2 regular expression that must match the whole path.
	Regex string `json:"regex,omitempty"`
}

// HeaderMatch matches one request header in exactly one way. A header that
// appears several times is matched against its values joined by commas.
type HeaderMatch struct {
	// Name is the header name, in lower case, such as x-user-group.
	Name string `json:"name"`
	// Exact matches the value exactly.
	Exact string `json:"exact,omitempty"`
	// Prefix matches values that start with it.
	Prefix string `json:"prefix,omitempty"`
	// Regex is an RE2 regular expression that must match the whole value.
	Regex string `json:"regex,omitempty"`
	// Present, if true, matches any value, empty included.
	Present bool `json:"present,omitempty"`
	// Absent, if true, matches requests without the header.
	Absent bool `json:"absent,omitempty"`
}

// QueryParamMatch matches one query parameter in exactly one way.
type QueryParamMatch struct {
	// Name is the parameter name, compared exactly after URL decoding.
	Name string `json:"name"`
	// Exact matches the decoded value exactly.
	Exact string `json:"exact,omitempty"`
	// Regex is an RE2 regular expression that must match the whole decoded
	// value.
	Regex string `json:"regex,omitempty"`
	// Present, if true, matches any value, empty included.
	Present bool `json:"present,omitempty"`
}

// Backend is a destination of a rule's traffic.
type Backend struct {
	// Service is a service in the Route's namespace; it defaults to the
	// Route's service.
	Service string `json:"service,omitempty"`
	// Subset, if set, narrows the service to the endpoints of a subset its
	// DestinationPolicy defines.
	Subset string `json:"subset,omitempty"`
	// Weight is the backend's share of the rule's traffic relative to the
	// other backends' weights: from 0 to 1000000, default 1. The weights of
	// a rule need not add up to 100, but must not all be 0.
	Weight *int32 `json:"weight,omitempty"`
}

// Default fills in each backend's and mirror's service, each backend's
// weight, and the defaults of retries, faults and mirrors.
func (s *RouteSpec) Default() {
	for i := range s.Rules {
		r := &s.Rules[i]
		for j := range r.Backends {
			b := &r.Backends[j]
			if b.Service == "" {
				b.Service = s.Service
			}
			if b.Weight == nil {
				b.Weight = ptr[int32](1)
			}
		}
		if r.Retries != nil {
			r.Retries.defaults()
		}
		if f := r.Fault; f != nil {
			if f.Delay != nil {
				defaultPercentage(&f.Delay.Percentage)
			}
			if f.Abort != nil {
				defaultPercentage(&f.Abort.Percentage)
			}
		}
		if m := r.Mirror; m != nil {
			if m.Service == "" {
				m.Service = s.Service
			}
			defaultPercentage(&m.Percentage)
		}
	}
}

// Validate checks a defaulted RouteSpec.
func (s *RouteSpec) Validate(path *Path) ErrorList {
	var errs ErrorList
	errs = append(errs, validateServiceName(path.Child("service"), s.Service)...)
	errs = append(errs, s.validateGatewayAttachment(path)...)
	rules := path.Child("rules")
	if len(s.Rules) == 0 {
		return append(errs, Invalid(rules, "at least one rule is required"))
	}
	names := make(map[string]int, len(s.Rules))
	catchAll := -1
	for i := range s.Rules {
		r, at := &s.Rules[i], rules.Index(i)
		if catchAll >= 0 {
			errs = append(errs, Invalid(at, "is shadowed by %s, which has no match and so takes every request: put the rule without match last", rules.Index(catchAll)))
		} else if len(r.Match) == 0 {
			catchAll = i
		}
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
		errs = append(errs, r.validate(at, s.Service)...)
	}
	return errs
}

func (r *RouteRule) validate(path *Path, service string) ErrorList {
	var errs ErrorList
	for i := range r.Match {
		errs = append(errs, r.Match[i].validate(path.Child("match").Index(i))...)
	}
	errs = append(errs, validateBackends(path.Child("backends"), r.Backends)...)
	if r.Timeout != nil {
		errs = append(errs, durationBetween(path.Child("timeout"), r.Timeout.Duration, minTimeout, maxTimeout)...)
	}
	if r.Retries != nil {
		errs = append(errs, r.Retries.validate(path.Child("retries"), path.Child("timeout"), r.Timeout)...)
	}
	if r.Fault != nil {
		errs = append(errs, r.Fault.validate(path.Child("fault"))...)
	}
	if m := r.Mirror; m != nil {
		mp := path.Child("mirror")
		errs = append(errs, validateTarget(mp, m.Service, m.Subset)...)
		if service != "" && (m.Service == "" || m.Service == service) && m.Subset == "" {
			errs = append(errs, Invalid(mp.Child("subset"), "is required when mirroring to the Route's own service %s: a copy of each request would go to the endpoints that serve it", quote(service)))
		}
		errs = append(errs, validatePercentage(mp.Child("percentage"), m.Percentage)...)
	}
	if r.RequestHeaders != nil {
		errs = append(errs, r.RequestHeaders.validate(path.Child("requestHeaders"))...)
	}
	if r.ResponseHeaders != nil {
		errs = append(errs, r.ResponseHeaders.validate(path.Child("responseHeaders"))...)
	}
	return errs
}

func (m *RouteMatch) validate(path *Path) ErrorList {
	if m.Path == nil && m.Method == "" && len(m.Headers) == 0 && len(m.QueryParams) == 0 {
		return ErrorList{Invalid(path, "is empty: set path, method, headers or queryParams, or leave match out to take every request")}
	}
	var errs ErrorList
	if m.Path != nil {
		errs = append(errs, m.Path.validate(path.Child("path"))...)
	}
	if m.Method != "" && !isMethod(m.Method) {
		errs = append(errs, Invalid(path.Child("method"), "%s is not a valid method: use an upper-case HTTP method such as GET or POST", quote(m.Method)))
	}
	for i, h := range m.Headers {
		errs = append(errs, h.validate(path.Child("headers").Index(i))...)
	}
	for i, q := range m.QueryParams {
		errs = append(errs, q.validate(path.Child("queryParams").Index(i))...)
	}
	return errs
}

func (m *PathMatch) validate(path *Path) ErrorList {
	set := setFields(field{"exact", m.Exact != ""}, field{"prefix", m.Prefix != ""}, field{"regex", m.Regex != ""})
	if len(set) != 1 {
		return ErrorList{exactlyOne(path, set, "exact, prefix or regex")}
	}
	switch {
	case m.Exact != "":
		return validatePathValue(path.Child("exact"), m.Exact)
	case m.Prefix != "":
		at := path.Child("prefix")
		if errs := validatePathValue(at, m.Prefix); errs != nil {
			return errs
		}
		if len(m.Prefix) > 1 && strings.HasSuffix(m.Prefix, "/") {
			return ErrorList{Invalid(at, "%s must not end with '/': %s already matches every path below it", quote(m.Prefix), quote(strings.TrimRight(m.Prefix, "/")))}
		}
		return nil
	default:
		return validateRegex(path.Child("regex"), m.Regex)
	}
}

// validatePathValue checks an exact path or prefix.
func validatePathValue(path *Path, p string) ErrorList {
	switch {
	case !strings.HasPrefix(p, "/"):
		return ErrorList{Invalid(path, "%s must start with '/'", quote(p))}
	case strings.ContainsAny(p, "?#"):
		return ErrorList{Invalid(path, "%s must not hold '?' or '#': match the query with queryParams", quote(p))}
	case strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return ErrorList{Invalid(path, "%s must not hold spaces or control characters: percent-encode them as the request does", quote(p))}
	}
	return nil
}

func (h *HeaderMatch) validate(path *Path) ErrorList {
	errs := validateHeaderName(path.Child("name"), h.Name)
	set := setFields(
		field{"exact", h.Exact != ""}, field{"prefix", h.Prefix != ""}, field{"regex", h.Regex != ""},
		field{"present", h.Present}, field{"absent", h.Absent},
	)
	if len(set) != 1 {
		return append(errs, exactlyOne(path, set, "exact, prefix, regex, present or absent"))
	}
	switch {
	case h.Exact != "":
		errs = append(errs, validateHeaderValue(path.Child("exact"), h.Exact)...)
	case h.Prefix != "":
		errs = append(errs, validateHeaderValue(path.Child("prefix"), h.Prefix)...)
	case h.Regex != "":
		errs = append(errs, validateRegex(path.Child("regex"), h.Regex)...)
	}
	return errs
}

func (q *QueryParamMatch) validate(path *Path) ErrorList {
	var errs ErrorList
	switch name := path.Child("name"); {
	case q.Name == "":
		errs = append(errs, Required(name))
	case !isQueryParamName(q.Name):
		errs = append(errs, Invalid(name, "%s is not a valid query parameter name: use at most 256 characters other than spaces, control characters, '&', '=' and '#'", quote(q.Name)))
	}
	set := setFields(field{"exact", q.Exact != ""}, field{"regex", q.Regex != ""}, field{"present", q.Present})
	if len(set) != 1 {
		return append(errs, exactlyOne(path, set, "exact, regex or present"))
	}
	if q.Regex != "" {
		errs = append(errs, validateRegex(path.Child("regex"), q.Regex)...)
	}
	return errs
}

// validateBackends checks a rule's backends and their weights.
func validateBackends(path *Path, backends []Backend) ErrorList {
	if len(backends) == 0 {
		return ErrorList{Invalid(path, "at least one backend is required")}
	}
	var errs ErrorList
	type target struct{ service, subset string }
	seen := make(map[target]int, len(backends))
	var sum int64
	weightsOK := true
	for i, b := range backends {
		at := path.Index(i)
		errs = append(errs, validateTarget(at, b.Service, b.Subset)...)
		if first, dup := seen[target{b.Service, b.Subset}]; dup {
			errs = append(errs, Invalid(at, "duplicate backend: %s has the same service and subset", path.Index(first)))
		} else {
			seen[target{b.Service, b.Subset}] = i
		}
		w := int64(1)
		if b.Weight != nil {
			w = int64(*b.Weight)
		}
		switch {
		case w < 0:
			errs = append(errs, Invalid(at.Child("weight"), "must be ≥ 0"))
			weightsOK = false
		case w > maxWeight:
			errs = append(errs, Invalid(at.Child("weight"), "must be at most %d", maxWeight))
			weightsOK = false
		}
		sum += w
	}
	if weightsOK && sum == 0 {
		errs = append(errs, Invalid(path, "every weight is 0: at least one backend needs a positive weight"))
	}
	return errs
}

// validateTarget checks the service and subset of a backend or mirror. An
// empty service is the Route's own, which is checked on its own.
func validateTarget(path *Path, service, subset string) ErrorList {
	var errs ErrorList
	if service != "" {
		errs = validateServiceName(path.Child("service"), service)
	}
	if subset != "" && !isDNSLabel(subset) {
		errs = append(errs, Invalid(path.Child("subset"), "%s is not a valid subset name: use %s", quote(subset), dnsLabelRule))
	}
	return errs
}

func validateServiceName(path *Path, name string) ErrorList {
	switch {
	case name == "":
		return ErrorList{Required(path)}
	case !isDNSLabel(name):
		return ErrorList{Invalid(path, "%s is not a valid service name: use %s", quote(name), dnsLabelRule)}
	}
	return nil
}
