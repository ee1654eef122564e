package v1alpha1

import (
	"slices"
	"time"
)

// RateLimitKind is the RateLimit resource: how many requests one service
// takes, per route and optionally per calling service, counted by each of
// its proxies (local) or across all of them (global). A RateLimit is named
// after its service, as a DestinationPolicy is, so a service has at most
// one and there is nothing to merge.
var RateLimitKind = Kind{
	Name:       "RateLimit",
	Plural:     "ratelimits",
	Aliases:    []string{"rl"},
	Namespaced: true,
	NewSpec:    func() Spec { return new(RateLimitSpec) },
}

func init() {
	Register(RateLimitKind)
}

// Bounds and defaults of a RateLimit.
const (
	maxRateLimits           = 64
	maxRateLimitRequests    = 1_000_000_000
	defaultRateLimitTimeout = 100 * time.Millisecond
	minRateLimitTimeout     = time.Millisecond
	maxRateLimitTimeout     = 10 * time.Second
)

// RateLimitSpec limits the requests one HTTP service takes. Its limits are
// tried in order, as a Route's rules are: a request counts against the
// first limit whose match fits it, and only that one. A limit without match
// or routeRule fits every request, so it can only be the last. A request
// that no limit fits is not limited.
type RateLimitSpec struct {
	// Limits are tried in order; the first that fits a request counts it.
	Limits []Limit `json:"limits"`
	// FailureMode is what the global limits do when the rate limit service
	// cannot answer within the timeout: open (the default) lets the request
	// through, closed refuses it with 503.
	FailureMode FailureMode `json:"failureMode,omitempty"`
	// Timeout bounds each call of a proxy to the rate limit service: from
	// 1ms to 10s, default 100ms.
	Timeout *Duration `json:"timeout,omitempty"`
}

// FailureMode is what a global limit does when the rate limit service is
// unreachable.
type FailureMode string

// The failure modes.
const (
	FailureModeOpen   FailureMode = "open"
	FailureModeClosed FailureMode = "closed"
)

// Limit is one limit of a RateLimit: which requests it counts and how many
// it lets through.
type Limit struct {
	// Name is a DNS label, unique in the RateLimit; it names the limit in
	// metrics, logs and the descriptors of the rate limit service.
	Name string `json:"name"`
	// Match lists alternatives, as a Route rule's match does: the limit
	// counts a request that fits any of them.
	Match []RouteMatch `json:"match,omitempty"`
	// RouteRule names a rule of the service's Route: the limit counts the
	// requests that rule's match fits. It excludes match. While the Route
	// or its rule does not exist, the limit counts nothing.
	RouteRule string `json:"routeRule,omitempty"`
	// PerSource, if true, gives each calling service (each SPIFFE ID) its
	// own count, so that one noisy client cannot use up the others' share.
	PerSource bool `json:"perSource,omitempty"`
	// Local, if set, is a token bucket in each proxy of the service: every
	// instance lets through this many requests on its own.
	Local *LocalLimit `json:"local,omitempty"`
	// Global, if set, is counted by the control plane's rate limit service
	// for all the instances of the service together.
	Global *GlobalLimit `json:"global,omitempty"`
}

// RateUnit is the period a number of requests is counted over.
type RateUnit string

// The rate units.
const (
	UnitSecond RateUnit = "second"
	UnitMinute RateUnit = "minute"
	UnitHour   RateUnit = "hour"
)

// Duration is the length of the unit.
func (u RateUnit) Duration() time.Duration {
	switch u {
	case UnitSecond:
		return time.Second
	case UnitMinute:
		return time.Minute
	case UnitHour:
		return time.Hour
	}
	return 0
}

var (
	localUnits  = []RateUnit{UnitSecond, UnitMinute, UnitHour}
	globalUnits = []RateUnit{UnitSecond, UnitMinute}
)

// LocalLimit is a token bucket: it refills at requests per unit and holds at
// most burst tokens, one spent per request.
type LocalLimit struct {
	// Requests is how many requests the bucket refills per unit: at least 1.
	Requests uint32 `json:"requests"`
	// Unit is second, minute or hour.
	Unit RateUnit `json:"unit"`
	// Burst is the bucket's size, how many requests may come at once after
	// a quiet spell: at least 1, default requests.
	Burst uint32 `json:"burst,omitempty"`
}

// GlobalLimit is a number of requests per unit, for every instance of the
// service together, counted in fixed windows of one unit.
type GlobalLimit struct {
	// Requests is how many requests a window lets through: at least 1.
	Requests uint32 `json:"requests"`
	// Unit is second or minute.
	Unit RateUnit `json:"unit"`
}

// Default fills in the failure mode, the timeout and each bucket's burst.
func (s *RateLimitSpec) Default() {
	setDefault(&s.FailureMode, FailureModeOpen)
	if s.Timeout == nil {
		s.Timeout = &Duration{defaultRateLimitTimeout}
	}
	for i := range s.Limits {
		if l := s.Limits[i].Local; l != nil && l.Burst == 0 {
			l.Burst = l.Requests
		}
	}
}

// Validate checks a defaulted RateLimitSpec.
func (s *RateLimitSpec) Validate(path *Path) ErrorList {
	var errs ErrorList
	limits := path.Child("limits")
	switch {
	case len(s.Limits) == 0:
		errs = append(errs, Invalid(limits, "at least one limit is required"))
	case len(s.Limits) > maxRateLimits:
		errs = append(errs, Invalid(limits, "at most %d limits are allowed, got %d", maxRateLimits, len(s.Limits)))
	}
	names := make(map[string]int, len(s.Limits))
	catchAll := -1
	for i := range s.Limits {
		l, at := &s.Limits[i], limits.Index(i)
		if catchAll >= 0 {
			errs = append(errs, Invalid(at, "is shadowed by %s, which has no match or routeRule and so counts every request: put the limit without match last", limits.Index(catchAll)))
		} else if len(l.Match) == 0 && l.RouteRule == "" {
			catchAll = i
		}
		switch first, dup := names[l.Name]; {
		case l.Name == "":
			errs = append(errs, Required(at.Child("name")))
		case !isDNSLabel(l.Name):
			errs = append(errs, Invalid(at.Child("name"), "%s is not a valid limit name: use %s", quote(l.Name), dnsLabelRule))
		case dup:
			errs = append(errs, Invalid(at.Child("name"), "duplicate limit name %s: %s has it too", quote(l.Name), limits.Index(first)))
		default:
			names[l.Name] = i
		}
		errs = append(errs, l.validate(at)...)
	}
	switch s.FailureMode {
	case FailureModeOpen, FailureModeClosed:
	default:
		errs = append(errs, NotSupported(path.Child("failureMode"), s.FailureMode, []FailureMode{FailureModeOpen, FailureModeClosed}))
	}
	if s.Timeout != nil {
		errs = append(errs, durationBetween(path.Child("timeout"), s.Timeout.Duration, minRateLimitTimeout, maxRateLimitTimeout)...)
	}
	return errs
}

func (l *Limit) validate(path *Path) ErrorList {
	var errs ErrorList
	if len(l.Match) > 0 && l.RouteRule != "" {
		errs = append(errs, Invalid(path, "match and routeRule are both set: set at most one (the rule's match is the limit's)"))
	}
	for i := range l.Match {
		errs = append(errs, l.Match[i].validate(path.Child("match").Index(i))...)
	}
	if l.RouteRule != "" && !isDNSLabel(l.RouteRule) {
		errs = append(errs, Invalid(path.Child("routeRule"), "%s is not a valid rule name: use %s", quote(l.RouteRule), dnsLabelRule))
	}
	if l.Local == nil && l.Global == nil {
		errs = append(errs, Invalid(path, "set local, global or both: a limit without either limits nothing"))
	}
	if b := l.Local; b != nil {
		at := path.Child("local")
		errs = append(errs, validateRate(at, b.Requests, b.Unit, localUnits)...)
		switch {
		case b.Burst < 1:
			errs = append(errs, Invalid(at.Child("burst"), "must be at least 1"))
		case b.Burst > maxRateLimitRequests:
			errs = append(errs, Invalid(at.Child("burst"), "must be at most %d", maxRateLimitRequests))
		}
	}
	if g := l.Global; g != nil {
		errs = append(errs, validateRate(path.Child("global"), g.Requests, g.Unit, globalUnits)...)
	}
	return errs
}

// validateRate checks a number of requests per unit.
func validateRate(path *Path, requests uint32, unit RateUnit, units []RateUnit) ErrorList {
	var errs ErrorList
	switch {
	case requests < 1:
		errs = append(errs, Invalid(path.Child("requests"), "must be at least 1: to refuse every request, use an AccessPolicy"))
	case requests > maxRateLimitRequests:
		errs = append(errs, Invalid(path.Child("requests"), "must be at most %d", maxRateLimitRequests))
	}
	switch {
	case unit == "":
		errs = append(errs, Required(path.Child("unit")))
	case !slices.Contains(units, unit):
		errs = append(errs, NotSupported(path.Child("unit"), unit, units))
	}
	return errs
}

var _ Spec = (*RateLimitSpec)(nil)
