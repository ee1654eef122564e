package v1alpha1

import (
	"strings"
	"time"
)

// DestinationPolicyKind is the DestinationPolicy resource: how one service's
// endpoints are grouped into subsets, balanced, limited, ejected when they
// fail and health-checked. A DestinationPolicy is named after its service,
// as the Service resource is, so a service has at most one and there is
// nothing to merge.
var DestinationPolicyKind = Kind{
	Name:       "DestinationPolicy",
	Plural:     "destinationpolicies",
	Aliases:    []string{"dp"},
	Namespaced: true,
	NewSpec:    func() Spec { return new(DestinationPolicySpec) },
}

// Bounds and defaults of a DestinationPolicy.
const (
	defaultChoiceCount        = 2
	maxChoiceCount            = 100
	defaultMinimumRingSize    = 1024
	maxMinimumRingSize        = 1 << 23
	maxCookieTTL              = 8760 * time.Hour
	maxCookieNameLength       = 256
	defaultConsecutive5xx     = 5
	defaultOutlierInterval    = 10 * time.Second
	defaultBaseEjectionTime   = 30 * time.Second
	defaultMaxEjectionPercent = 10
	defaultHealthInterval     = 10 * time.Second
	defaultHealthTimeout      = time.Second
	defaultHealthyThreshold   = 2
	defaultUnhealthyThreshold = 3
	maxThreshold              = 100
)

// DestinationPolicySpec says how traffic to a service's endpoints is spread
// and guarded. It applies to every client of the service.
type DestinationPolicySpec struct {
	// Subsets group the service's endpoints by their workloads' labels, for
	// Routes to send traffic to.
	Subsets []Subset `json:"subsets,omitempty"`
	// LoadBalancer picks an endpoint for each request or connection.
	LoadBalancer LoadBalancer `json:"loadBalancer,omitempty"`
	// ConnectionLimits, if set, caps what each client proxy has in flight
	// to the service: the circuit breaker.
	ConnectionLimits *ConnectionLimits `json:"connectionLimits,omitempty"`
	// OutlierDetection, if set, ejects endpoints that keep failing from the
	// load balancer for a while.
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	// HealthCheck, if set, has client proxies probe every endpoint and send
	// traffic only to those that answer.
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
}

// Subset is a named group of a service's endpoints.
type Subset struct {
	// Name is a DNS label, unique in the policy, that Routes refer to.
	Name string `json:"name"`
	// Labels select the endpoints whose workloads carry all of them, such
	// as {version: v2}. At least one is required.
	Labels map[string]string `json:"labels"`
}

// LoadBalancer is the load-balancing policy. Only the settings of the chosen
// type may be given.
type LoadBalancer struct {
	// Type is roundRobin, leastRequest, ringHash or random. It defaults to
	// the type whose settings are given, and else to roundRobin.
	Type LoadBalancerType `json:"type,omitempty"`
	// LeastRequest holds the settings of leastRequest.
	LeastRequest *LeastRequest `json:"leastRequest,omitempty"`
	// RingHash holds the settings of ringHash, which are required.
	RingHash *RingHash `json:"ringHash,omitempty"`
}

// LoadBalancerType names a load-balancing policy.
type LoadBalancerType string

const (
	// LoadBalancerRoundRobin takes the endpoints in turn.
	LoadBalancerRoundRobin LoadBalancerType = "roundRobin"
	// LoadBalancerLeastRequest picks, among a few endpoints drawn at random,
	// the one with the fewest requests in flight, weighted by its recent
	// latency.
	LoadBalancerLeastRequest LoadBalancerType = "leastRequest"
	// LoadBalancerRingHash picks by a hash of the request on a consistent
	// hash ring, so the same key keeps going to the same endpoint while the
	// endpoints stay the same.
	LoadBalancerRingHash LoadBalancerType = "ringHash"
	// LoadBalancerRandom picks an endpoint at random.
	LoadBalancerRandom LoadBalancerType = "random"
)

// loadBalancerTypes are the types Validate accepts.
var loadBalancerTypes = []LoadBalancerType{
	LoadBalancerRoundRobin, LoadBalancerLeastRequest, LoadBalancerRingHash, LoadBalancerRandom,
}

// LeastRequest holds the settings of the leastRequest policy.
type LeastRequest struct {
	// ChoiceCount is how many endpoints are drawn for each pick: from 2 to
	// 100, default 2 (the power of two choices).
	ChoiceCount int32 `json:"choiceCount,omitempty"`
}

// RingHash holds the settings of the ringHash policy. Exactly one of Header,
// Cookie and SourceIP says what is hashed.
type RingHash struct {
	// Header hashes the value of the request header of that name, in lower
	// case; a request without it goes to a random endpoint.
	Header string `json:"header,omitempty"`
	// Cookie hashes the value of a cookie.
	Cookie *HashCookie `json:"cookie,omitempty"`
	// SourceIP, if true, hashes the client's IP address.
	SourceIP bool `json:"sourceIP,omitempty"`
	// MinimumRingSize is the fewest entries on the ring: more spreads load
	// more evenly and costs memory. From 1 to 8388608, default 1024.
	MinimumRingSize int32 `json:"minimumRingSize,omitempty"`
}

// HashCookie is the cookie a ring hash is computed on.
type HashCookie struct {
	// Name is the cookie's name.
	Name string `json:"name"`
	// TTL is the lifetime of the cookie the proxy sets on a response when
	// the request had none, so that the client's later requests go to the
	// same endpoint: from 0 to 8760h. 0, the default, sets a session cookie.
	TTL Duration `json:"ttl,omitempty"`
}

// ConnectionLimits caps what each client proxy has in flight to the
// service; past a cap, new requests fail fast instead of queueing. An unset
// cap leaves the proxy's own limit.
type ConnectionLimits struct {
	// MaxConnections caps connections to all the service's endpoints: at
	// least 1.
	MaxConnections *int32 `json:"maxConnections,omitempty"`
	// MaxPendingRequests caps requests waiting for a connection: at least 1.
	MaxPendingRequests *int32 `json:"maxPendingRequests,omitempty"`
	// MaxRequests caps requests in flight: at least 1.
	MaxRequests *int32 `json:"maxRequests,omitempty"`
	// MaxRetries caps retries in flight: at least 0, which allows none.
	MaxRetries *int32 `json:"maxRetries,omitempty"`
}

// OutlierDetection ejects failing endpoints from the load balancer, for
// BaseEjectionTime times the number of times they were ejected. Each
// consecutive count, when set, ejects an endpoint after that many failures
// of its kind in a row; 0 turns that check off. When none is set,
// Consecutive5xx defaults to 5.
type OutlierDetection struct {
	// Consecutive5xx counts 5xx responses, resets and connection failures.
	Consecutive5xx int32 `json:"consecutive5xx,omitempty"`
	// ConsecutiveGatewayErrors counts 502, 503 and 504 responses, resets and
	// connection failures.
	ConsecutiveGatewayErrors int32 `json:"consecutiveGatewayErrors,omitempty"`
	// ConsecutiveLocalOriginFailures counts failures seen by the proxy
	// itself: connection failures, resets and timeouts.
	ConsecutiveLocalOriginFailures int32 `json:"consecutiveLocalOriginFailures,omitempty"`
	// Interval is how often ejections are reconsidered: from 100ms to 1h,
	// default 10s.
	Interval Duration `json:"interval,omitempty"`
	// BaseEjectionTime is how long a first ejection lasts: from 1s to 1h,
	// default 30s.
	BaseEjectionTime Duration `json:"baseEjectionTime,omitempty"`
	// MaxEjectionPercent caps the share of endpoints ejected at once: from
	// 1 to 100, default 10. At least one endpoint may always be ejected.
	MaxEjectionPercent int32 `json:"maxEjectionPercent,omitempty"`
}

// HealthCheck probes every endpoint of the service, over HTTP or gRPC:
// exactly one of HTTP and GRPC must be set.
type HealthCheck struct {
	HTTP *HTTPHealthCheck `json:"http,omitempty"`
	GRPC *GRPCHealthCheck `json:"grpc,omitempty"`
	// Interval is the time between probes of an endpoint: from 1s to 1h,
	// default 10s.
	Interval Duration `json:"interval,omitempty"`
	// Timeout bounds a probe: from 1ms to 1m and no longer than Interval,
	// default 1s.
	Timeout Duration `json:"timeout,omitempty"`
	// HealthyThreshold is how many probes in a row must pass to mark an
	// endpoint healthy again: from 1 to 100, default 2.
	HealthyThreshold int32 `json:"healthyThreshold,omitempty"`
	// UnhealthyThreshold is how many probes in a row must fail to mark an
	// endpoint unhealthy: from 1 to 100, default 3.
	UnhealthyThreshold int32 `json:"unhealthyThreshold,omitempty"`
}

// HTTPHealthCheck probes with an HTTP GET.
type HTTPHealthCheck struct {
	// Path is the path requested, such as /healthz.
	Path string `json:"path"`
	// ExpectedStatuses are the statuses that pass, from 100 to 599: default
	// 200 only.
	ExpectedStatuses []int32 `json:"expectedStatuses,omitempty"`
}

// GRPCHealthCheck probes with the standard grpc.health.v1.Health/Check call.
type GRPCHealthCheck struct {
	// ServiceName is the service asked about; empty asks about the server
	// as a whole.
	ServiceName string `json:"serviceName,omitempty"`
}

// Default fills in the load balancer's type and settings and the defaults
// of outlier detection and health checks.
func (s *DestinationPolicySpec) Default() {
	lb := &s.LoadBalancer
	if lb.Type == "" {
		switch {
		case lb.LeastRequest != nil && lb.RingHash == nil:
			lb.Type = LoadBalancerLeastRequest
		case lb.RingHash != nil && lb.LeastRequest == nil:
			lb.Type = LoadBalancerRingHash
		case lb.RingHash == nil && lb.LeastRequest == nil:
			lb.Type = LoadBalancerRoundRobin
		}
	}
	if lb.Type == LoadBalancerLeastRequest && lb.LeastRequest == nil {
		lb.LeastRequest = new(LeastRequest)
	}
	if lr := lb.LeastRequest; lr != nil && lr.ChoiceCount == 0 {
		lr.ChoiceCount = defaultChoiceCount
	}
	if rh := lb.RingHash; rh != nil && rh.MinimumRingSize == 0 {
		rh.MinimumRingSize = defaultMinimumRingSize
	}
	if od := s.OutlierDetection; od != nil {
		if od.Consecutive5xx == 0 && od.ConsecutiveGatewayErrors == 0 && od.ConsecutiveLocalOriginFailures == 0 {
			od.Consecutive5xx = defaultConsecutive5xx
		}
		setDefault(&od.Interval.Duration, defaultOutlierInterval)
		setDefault(&od.BaseEjectionTime.Duration, defaultBaseEjectionTime)
		setDefault(&od.MaxEjectionPercent, defaultMaxEjectionPercent)
	}
	if hc := s.HealthCheck; hc != nil {
		if hc.HTTP != nil && len(hc.HTTP.ExpectedStatuses) == 0 {
			hc.HTTP.ExpectedStatuses = []int32{200}
		}
		setDefault(&hc.Interval.Duration, defaultHealthInterval)
		setDefault(&hc.Timeout.Duration, defaultHealthTimeout)
		setDefault(&hc.HealthyThreshold, defaultHealthyThreshold)
		setDefault(&hc.UnhealthyThreshold, defaultUnhealthyThreshold)
	}
}

// setDefault sets *v to def when it is zero.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate checks a defaulted DestinationPolicySpec.
func (s *DestinationPolicySpec) Validate(path *Path) ErrorList {
	var errs ErrorList
	subsets := path.Child("subsets")
	names := make(map[string]int, len(s.Subsets))
	for i, ss := range s.Subsets {
		at := subsets.Index(i)
		switch first, dup := names[ss.Name]; {
		case ss.Name == "":
			errs = append(errs, Required(at.Child("name")))
		case !isDNSLabel(ss.Name):
			errs = append(errs, Invalid(at.Child("name"), "%s is not a valid subset name: use %s", quote(ss.Name), dnsLabelRule))
		case dup:
			errs = append(errs, Invalid(at.Child("name"), "duplicate subset name %s: %s has it too", quote(ss.Name), subsets.Index(first)))
		default:
			names[ss.Name] = i
		}
		if len(ss.Labels) == 0 {
			errs = append(errs, Invalid(at.Child("labels"), "at least one label is required: a subset without labels would be every endpoint"))
		}
		errs = append(errs, validateLabels(at.Child("labels"), ss.Labels)...)
	}
	errs = append(errs, s.LoadBalancer.validate(path.Child("loadBalancer"))...)
	if s.ConnectionLimits != nil {
		errs = append(errs, s.ConnectionLimits.validate(path.Child("connectionLimits"))...)
	}
	if s.OutlierDetection != nil {
		errs = append(errs, s.OutlierDetection.validate(path.Child("outlierDetection"))...)
	}
	if s.HealthCheck != nil {
		errs = append(errs, s.HealthCheck.validate(path.Child("healthCheck"))...)
	}
	return errs
}

func (lb *LoadBalancer) validate(path *Path) ErrorList {
	var errs ErrorList
	notFor := func(name string, set bool) {
		if set {
			errs = append(errs, Invalid(path.Child(name), "must not be set when type is %s", lb.Type))
		}
	}
	switch lb.Type {
	case "":
		// Default leaves the type unset only when both settings are given.
		return ErrorList{Invalid(path.Child("type"), "is required: leastRequest and ringHash are both set")}
	case LoadBalancerRoundRobin, LoadBalancerRandom:
		notFor("leastRequest", lb.LeastRequest != nil)
		notFor("ringHash", lb.RingHash != nil)
	case LoadBalancerLeastRequest:
		notFor("ringHash", lb.RingHash != nil)
		if lr := lb.LeastRequest; lr != nil && (lr.ChoiceCount < 2 || lr.ChoiceCount > maxChoiceCount) {
			errs = append(errs, Invalid(path.Child("leastRequest").Child("choiceCount"), "must be between 2 and %d, got %d", maxChoiceCount, lr.ChoiceCount))
		}
	case LoadBalancerRingHash:
		notFor("leastRequest", lb.LeastRequest != nil)
		if lb.RingHash == nil {
			errs = append(errs, Invalid(path.Child("ringHash"), "is required when type is ringHash: hash on a header, a cookie or sourceIP"))
		} else {
			errs = append(errs, lb.RingHash.validate(path.Child("ringHash"))...)
		}
	default:
		errs = append(errs, NotSupported(path.Child("type"), lb.Type, loadBalancerTypes))
	}
	return errs
}

func (rh *RingHash) validate(path *Path) ErrorList {
	var errs ErrorList
	set := setFields(field{"header", rh.Header != ""}, field{"cookie", rh.Cookie != nil}, field{"sourceIP", rh.SourceIP})
	if len(set) != 1 {
		errs = append(errs, exactlyOne(path, set, "header, cookie or sourceIP"))
	}
	if rh.Header != "" {
		errs = append(errs, validateHeaderName(path.Child("header"), rh.Header)...)
	}
	if c := rh.Cookie; c != nil {
		at := path.Child("cookie")
		switch name := at.Child("name"); {
		case c.Name == "":
			errs = append(errs, Required(name))
		case !isCookieName(c.Name):
			errs = append(errs, Invalid(name, "%s is not a valid cookie name: use an HTTP token of at most 256 characters: letters, digits and !#$%%&'*+-.^_`|~", quote(c.Name)))
		}
		errs = append(errs, durationBetween(at.Child("ttl"), c.TTL.Duration, 0, maxCookieTTL)...)
	}
	if n := rh.MinimumRingSize; n < 1 || n > maxMinimumRingSize {
		errs = append(errs, Invalid(path.Child("minimumRingSize"), "must be between 1 and %d, got %d", maxMinimumRingSize, n))
	}
	return errs
}

// isCookieName reports whether s is an HTTP token, as RFC 6265 requires of
// a cookie name.
func isCookieName(s string) bool {
	if s == "" || len(s) > maxCookieNameLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isToken(s[i]) {
			return false
		}
	}
	return true
}

func (c *ConnectionLimits) validate(path *Path) ErrorList {
	var errs ErrorList
	atLeast := func(name string, v *int32, lo int32) {
		if v != nil && *v < lo {
			errs = append(errs, Invalid(path.Child(name), "must be at least %d, got %d", lo, *v))
		}
	}
	atLeast("maxConnections", c.MaxConnections, 1)
	atLeast("maxPendingRequests", c.MaxPendingRequests, 1)
	atLeast("maxRequests", c.MaxRequests, 1)
	atLeast("maxRetries", c.MaxRetries, 0)
	return errs
}

func (o *OutlierDetection) validate(path *Path) ErrorList {
	var errs ErrorList
	for _, c := range []struct {
		name string
		v    int32
	}{
		{"consecutive5xx", o.Consecutive5xx},
		{"consecutiveGatewayErrors", o.ConsecutiveGatewayErrors},
		{"consecutiveLocalOriginFailures", o.ConsecutiveLocalOriginFailures},
	} {
		if c.v < 0 {
			errs = append(errs, Invalid(path.Child(c.name), "must be ≥ 0, got %d", c.v))
		}
	}
	errs = append(errs, durationBetween(path.Child("interval"), o.Interval.Duration, 100*time.Millisecond, time.Hour)...)
	errs = append(errs, durationBetween(path.Child("baseEjectionTime"), o.BaseEjectionTime.Duration, time.Second, time.Hour)...)
	if p := o.MaxEjectionPercent; p < 1 || p > 100 {
		errs = append(errs, Invalid(path.Child("maxEjectionPercent"), "must be between 1 and 100, got %d", p))
	}
	return errs
}

func (h *HealthCheck) validate(path *Path) ErrorList {
	var errs ErrorList
	set := setFields(field{"http", h.HTTP != nil}, field{"grpc", h.GRPC != nil})
	if len(set) != 1 {
		errs = append(errs, exactlyOne(path, set, "http or grpc"))
	}
	if h.HTTP != nil {
		at := path.Child("http")
		if h.HTTP.Path == "" {
			errs = append(errs, Required(at.Child("path")))
		} else {
			errs = append(errs, validateProbePath(at.Child("path"), h.HTTP.Path)...)
		}
		errs = append(errs, validateStatuses(at.Child("expectedStatuses"), h.HTTP.ExpectedStatuses, 100, 599)...)
	}
	if h.GRPC != nil && h.GRPC.ServiceName != "" && !isGRPCServiceName(h.GRPC.ServiceName) {
		errs = append(errs, Invalid(path.Child("grpc").Child("serviceName"),
			"%s is not a valid gRPC service name: use a fully qualified name such as grpc.health.v1.Health (letters, digits, '_' and '.')", quote(h.GRPC.ServiceName)))
	}
	interval := path.Child("interval")
	errs = append(errs, durationBetween(interval, h.Interval.Duration, time.Second, time.Hour)...)
	timeout := path.Child("timeout")
	if e := durationBetween(timeout, h.Timeout.Duration, time.Millisecond, time.Minute); e != nil {
		errs = append(errs, e...)
	} else if h.Timeout.Duration > h.Interval.Duration {
		errs = append(errs, Invalid(timeout, "%s is longer than interval (%s)", h.Timeout, h.Interval))
	}
	for _, t := range []struct {
		name string
		v    int32
	}{{"healthyThreshold", h.HealthyThreshold}, {"unhealthyThreshold", h.UnhealthyThreshold}} {
		if t.v < 1 || t.v > maxThreshold {
			errs = append(errs, Invalid(path.Child(t.name), "must be between 1 and %d, got %d", maxThreshold, t.v))
		}
	}
	return errs
}

// validateProbePath checks a health check's path, which, unlike a route's,
// may carry a query.
func validateProbePath(path *Path, p string) ErrorList {
	switch {
	case p[0] != '/':
		return ErrorList{Invalid(path, "%s must start with '/'", quote(p))}
	case strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '#' }):
		return ErrorList{Invalid(path, "%s must not hold spaces, control characters or '#'", quote(p))}
	}
	return nil
}

// isGRPCServiceName reports whether s is a fully qualified protobuf service
// name, such as grpc.health.v1.Health.
func isGRPCServiceName(s string) bool {
	if len(s) > maxHeaderNameLength {
		return false
	}
	prev := byte('.')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if prev == '.' {
				return false
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
		case '0' <= c && c <= '9':
			if prev == '.' {
				return false
			}
		default:
			return false
		}
		prev = c
	}
	return prev != '.'
}

var _ Spec = (*DestinationPolicySpec)(nil)
