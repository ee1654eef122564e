package v1alpha1

import (
	"slices"
	"time"
)

// Retries, faults, mirroring and header edits: what a Route rule does to
// the requests it takes.

// RetryPolicy says which failed requests are tried again, how often and how
// fast.
type RetryPolicy struct {
	// Attempts is how many times a request may be retried after its first
	// try fails: from 1 to 10.
	Attempts int32 `json:"attempts"`
	// PerTryTimeout bounds each try, the first included: from 1ms to 24h,
	// and no longer than the rule's timeout. Unset, only the rule's timeout
	// bounds the tries.
	PerTryTimeout *Duration `json:"perTryTimeout,omitempty"`
	// RetryOn lists the failures that are retried. It defaults to
	// connect-failure, reset and gateway-error: failures where the backend
	// gave no answer of its own.
	RetryOn []RetryOn `json:"retryOn,omitempty"`
	// RetriableStatusCodes are the HTTP statuses (400 to 599) retried when
	// RetryOn holds retriable-status-codes; they must be set then, and only
	// then.
	RetriableStatusCodes []int32 `json:"retriableStatusCodes,omitempty"`
	// Backoff spaces the retries out.
	Backoff RetryBackoff `json:"backoff,omitempty"`
	// Budget caps the retries a proxy has in flight to a service, so that
	// retries cannot multiply the load on a service that is already failing.
	Budget RetryBudget `json:"budget,omitempty"`
	// RetryNonIdempotent, if true, also retries requests whose method is not
	// idempotent (such as POST and PATCH), which a backend may have acted on
	// before it failed. A request that never reached a backend
	// (connect-failure) is retried whatever its method.
	RetryNonIdempotent bool `json:"retryNonIdempotent,omitempty"`
}

// RetryOn is a kind of failure that is retried.
type RetryOn string

const (
	// RetryOn5xx retries a response with a 5xx status, a reset and a
	// connection failure.
	RetryOn5xx RetryOn = "5xx"
	// RetryOnGatewayError retries a 502, 503 or 504 response.
	RetryOnGatewayError RetryOn = "gateway-error"
	// RetryOnReset retries when the backend resets the stream or closes the
	// connection before it responds.
	RetryOnReset RetryOn = "reset"
	// RetryOnConnectFailure retries when no connection to a backend could be
	// made.
	RetryOnConnectFailure RetryOn = "connect-failure"
	// RetryOnRetriableStatusCodes retries the statuses listed in
	// RetryPolicy.RetriableStatusCodes.
	RetryOnRetriableStatusCodes RetryOn = "retriable-status-codes"

	// The gRPC statuses that may be retried, read from the grpc-status of a
	// response.
	RetryOnCancelled         RetryOn = "cancelled"
	RetryOnDeadlineExceeded  RetryOn = "deadline-exceeded"
	RetryOnInternal          RetryOn = "internal"
	RetryOnResourceExhausted RetryOn = "resource-exhausted"
	RetryOnUnavailable       RetryOn = "unavailable"
)

// retryOns are the values Validate accepts, in the order messages list them.
var retryOns = []RetryOn{
	RetryOn5xx, RetryOnGatewayError, RetryOnReset, RetryOnConnectFailure, RetryOnRetriableStatusCodes,
	RetryOnCancelled, RetryOnDeadlineExceeded, RetryOnInternal, RetryOnResourceExhausted, RetryOnUnavailable,
}

// defaultRetryOn is RetryPolicy.RetryOn when none is given.
var defaultRetryOn = []RetryOn{RetryOnConnectFailure, RetryOnReset, RetryOnGatewayError}

// RetryBackoff is a jittered exponential backoff between retries.
type RetryBackoff struct {
	// BaseInterval is the first wait, doubled at each retry: from 1ms to 1m,
	// default 25ms.
	BaseInterval Duration `json:"baseInterval,omitempty"`
	// MaxInterval caps the wait: at least BaseInterval and at most 5m,
	// default ten times BaseInterval.
	MaxInterval Duration `json:"maxInterval,omitempty"`
}

// RetryBudget caps retries relative to the requests in flight.
type RetryBudget struct {
	// Percent is the most retries in flight, as a percentage of the active
	// requests: more than 0 and at most 100, default 20.
	Percent float64 `json:"percent,omitempty"`
	// MinRetryConcurrency is the retries always allowed in flight, however
	// few requests are active: at least 1, default 3.
	MinRetryConcurrency int32 `json:"minRetryConcurrency,omitempty"`
}

// Fault injects failures into some requests before they reach a backend.
// At least one of Delay and Abort must be set.
type Fault struct {
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay holds some requests back before forwarding them.
type FaultDelay struct {
	// Fixed is how long: from 1ms to 1h.
	Fixed Duration `json:"fixed"`
	// Percentage of requests delayed: from 0 to 100, such as 0.1; default
	// 100.
	Percentage *float64 `json:"percentage,omitempty"`
}

// FaultAbort answers some requests with an error instead of forwarding them.
// Exactly one of HTTPStatus and GRPCStatus must be set.
type FaultAbort struct {
	// HTTPStatus is the status of the answer: from 400 to 599.
	HTTPStatus int32 `json:"httpStatus,omitempty"`
	// GRPCStatus is the grpc-status of the answer, for gRPC clients.
	GRPCStatus GRPCStatus `json:"grpcStatus,omitempty"`
	// Percentage of requests aborted: from 0 to 100, such as 0.1; default
	// 100.
	Percentage *float64 `json:"percentage,omitempty"`
}

// GRPCStatus is a gRPC status other than OK, written in lower case with
// dashes, as in the gRPC documentation's names.
type GRPCStatus string

const (
	GRPCCancelled          GRPCStatus = "cancelled"
	GRPCUnknown            GRPCStatus = "unknown"
	GRPCInvalidArgument    GRPCStatus = "invalid-argument"
	GRPCDeadlineExceeded   GRPCStatus = "deadline-exceeded"
	GRPCNotFound           GRPCStatus = "not-found"
	GRPCAlreadyExists      GRPCStatus = "already-exists"
	GRPCPermissionDenied   GRPCStatus = "permission-denied"
	GRPCResourceExhausted  GRPCStatus = "resource-exhausted"
	GRPCFailedPrecondition GRPCStatus = "failed-precondition"
	GRPCAborted            GRPCStatus = "aborted"
	GRPCOutOfRange         GRPCStatus = "out-of-range"
	GRPCUnimplemented      GRPCStatus = "unimplemented"
	GRPCInternal           GRPCStatus = "internal"
	GRPCUnavailable        GRPCStatus = "unavailable"
	GRPCDataLoss           GRPCStatus = "data-loss"
	GRPCUnauthenticated    GRPCStatus = "unauthenticated"
)

// grpcStatuses are the statuses Validate accepts, in code order (1 to 16).
var grpcStatuses = []GRPCStatus{
	GRPCCancelled, GRPCUnknown, GRPCInvalidArgument, GRPCDeadlineExceeded, GRPCNotFound, GRPCAlreadyExists,
	GRPCPermissionDenied, GRPCResourceExhausted, GRPCFailedPrecondition, GRPCAborted, GRPCOutOfRange,
	GRPCUnimplemented, GRPCInternal, GRPCUnavailable, GRPCDataLoss, GRPCUnauthenticated,
}

// Code returns the status's numeric gRPC code, or 0 (OK) for an unknown name.
func (s GRPCStatus) Code() int {
	return slices.Index(grpcStatuses, s) + 1
}

// Mirror sends a copy of some requests to another destination, whose
// responses are ignored.
type Mirror struct {
	// Service is a service in the Route's namespace; it defaults to the
	// Route's service, and then Subset must be set.
	Service string `json:"service,omitempty"`
	// Subset, if set, narrows the service to a subset its DestinationPolicy
	// defines.
	Subset string `json:"subset,omitempty"`
	// Percentage of requests mirrored: from 0 to 100, such as 0.1; default
	// 100.
	Percentage *float64 `json:"percentage,omitempty"`
}

// HeaderEdits changes headers. A header may be named in only one of Set and
// Remove, and not in both Set and Add.
type HeaderEdits struct {
	// Set replaces a header's values with one value, adding the header if
	// it is missing.
	Set []HeaderValue `json:"set,omitempty"`
	// Add appends a value to a header, keeping the values it has.
	Add []HeaderValue `json:"add,omitempty"`
	// Remove names headers to remove.
	Remove []string `json:"remove,omitempty"`
}

// HeaderValue is a header name, in lower case, and a value.
type HeaderValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (p *RetryPolicy) defaults() {
	if len(p.RetryOn) == 0 {
		p.RetryOn = slices.Clone(defaultRetryOn)
	}
	b := &p.Backoff
	if b.BaseInterval.Duration == 0 {
		b.BaseInterval.Duration = defaultBackoffBase
	}
	if b.MaxInterval.Duration == 0 {
		// A base out of range is Validate's to report: it must not make a
		// second, puzzling error about a maximum the user never wrote.
		b.MaxInterval.Duration = maxBackoffMax
		if base := b.BaseInterval.Duration; base > 0 && base <= maxBackoffMax/10 {
			b.MaxInterval.Duration = 10 * base
		}
	}
	if p.Budget.Percent == 0 {
		p.Budget.Percent = defaultBudgetPercent
	}
	if p.Budget.MinRetryConcurrency == 0 {
		p.Budget.MinRetryConcurrency = defaultMinRetryConc
	}
}

func defaultPercentage(p **float64) {
	if *p == nil {
		*p = ptr(fullPercentage)
	}
}

func (p *RetryPolicy) validate(path, timeoutPath *Path, timeout *Duration) ErrorList {
	var errs ErrorList
	switch at := path.Child("attempts"); {
	case p.Attempts == 0:
		errs = append(errs, Invalid(at, "is required: the number of retries after the first try, from 1 to %d", maxRetryAttempts))
	case p.Attempts < 1 || p.Attempts > maxRetryAttempts:
		errs = append(errs, Invalid(at, "must be between 1 and %d, got %d", maxRetryAttempts, p.Attempts))
	}
	if t := p.PerTryTimeout; t != nil {
		at := path.Child("perTryTimeout")
		if e := durationBetween(at, t.Duration, minTimeout, maxTimeout); e != nil {
			errs = append(errs, e...)
		} else if timeout != nil && t.Duration > timeout.Duration {
			errs = append(errs, Invalid(at, "%s is longer than %s (%s), which bounds every try", t, timeoutPath, timeout))
		}
	}
	retryOn := path.Child("retryOn")
	seen := make(map[RetryOn]int, len(p.RetryOn))
	for i, r := range p.RetryOn {
		switch first, dup := seen[r]; {
		case !slices.Contains(retryOns, r):
			errs = append(errs, NotSupported(retryOn.Index(i), r, retryOns))
		case dup:
			errs = append(errs, Invalid(retryOn.Index(i), "duplicate value %s: %s has it too", quote(string(r)), retryOn.Index(first)))
		default:
			seen[r] = i
		}
	}
	codes := path.Child("retriableStatusCodes")
	_, wantCodes := seen[RetryOnRetriableStatusCodes]
	switch {
	case wantCodes && len(p.RetriableStatusCodes) == 0:
		errs = append(errs, Invalid(codes, "is required: retryOn holds %s", RetryOnRetriableStatusCodes))
	case !wantCodes && len(p.RetriableStatusCodes) > 0:
		errs = append(errs, Invalid(codes, "must be empty unless retryOn holds %s", RetryOnRetriableStatusCodes))
	default:
		errs = append(errs, validateStatuses(codes, p.RetriableStatusCodes, 400, 599)...)
	}
	errs = append(errs, p.Backoff.validate(path.Child("backoff"))...)
	budget := path.Child("budget")
	if pc := p.Budget.Percent; !(pc > 0 && pc <= 100) {
		errs = append(errs, Invalid(budget.Child("percent"), "must be more than 0 and at most 100, got %g", pc))
	}
	if p.Budget.MinRetryConcurrency < 1 {
		errs = append(errs, Invalid(budget.Child("minRetryConcurrency"), "must be at least 1, got %d", p.Budget.MinRetryConcurrency))
	}
	return errs
}

func (b *RetryBackoff) validate(path *Path) ErrorList {
	base, maxi := b.BaseInterval.Duration, b.MaxInterval.Duration
	errs := durationBetween(path.Child("baseInterval"), base, time.Millisecond, maxBackoffBase)
	if e := durationBetween(path.Child("maxInterval"), maxi, time.Millisecond, maxBackoffMax); e != nil {
		errs = append(errs, e...)
	} else if len(errs) == 0 && maxi < base {
		errs = append(errs, Invalid(path.Child("maxInterval"), "%s is shorter than baseInterval (%s)", b.MaxInterval, b.BaseInterval))
	}
	return errs
}

// validateStatuses checks a list of HTTP statuses for range and repeats.
func validateStatuses(path *Path, codes []int32, lo, hi int32) ErrorList {
	var errs ErrorList
	seen := make(map[int32]int, len(codes))
	for i, c := range codes {
		switch first, dup := seen[c]; {
		case c < lo || c > hi:
			errs = append(errs, Invalid(path.Index(i), "must be between %d and %d, got %d", lo, hi, c))
		case dup:
			errs = append(errs, Invalid(path.Index(i), "duplicate status %d: %s has it too", c, path.Index(first)))
		default:
			seen[c] = i
		}
	}
	return errs
}

func (f *Fault) validate(path *Path) ErrorList {
	if f.Delay == nil && f.Abort == nil {
		return ErrorList{Invalid(path, "is empty: set delay, abort or both")}
	}
	var errs ErrorList
	if d := f.Delay; d != nil {
		at := path.Child("delay")
		if d.Fixed.Duration == 0 {
			errs = append(errs, Required(at.Child("fixed")))
		} else {
			errs = append(errs, durationBetween(at.Child("fixed"), d.Fixed.Duration, time.Millisecond, maxFaultDelay)...)
		}
		errs = append(errs, validatePercentage(at.Child("percentage"), d.Percentage)...)
	}
	if a := f.Abort; a != nil {
		at := path.Child("abort")
		switch {
		case a.HTTPStatus == 0 && a.GRPCStatus == "":
			errs = append(errs, Invalid(at, "set exactly one of httpStatus or grpcStatus"))
		case a.HTTPStatus != 0 && a.GRPCStatus != "":
			errs = append(errs, Invalid(at, "httpStatus and grpcStatus are both set: set exactly one"))
		case a.HTTPStatus != 0 && (a.HTTPStatus < 400 || a.HTTPStatus > 599):
			errs = append(errs, Invalid(at.Child("httpStatus"), "must be between 400 and 599, got %d", a.HTTPStatus))
		case a.GRPCStatus != "" && !slices.Contains(grpcStatuses, a.GRPCStatus):
			errs = append(errs, NotSupported(at.Child("grpcStatus"), a.GRPCStatus, grpcStatuses))
		}
		errs = append(errs, validatePercentage(at.Child("percentage"), a.Percentage)...)
	}
	return errs
}

// headersProxyOwns are the headers a proxy writes itself, as HTTP framing
// or connection management requires: an edit to one would break requests.
var headersProxyOwns = []string{
	"connection", "content-length", "host", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
}

func (e *HeaderEdits) validate(path *Path) ErrorList {
	var errs ErrorList
	type use struct {
		op   string
		path *Path
	}
	seen := make(map[string]use) // header name -> its first edit
	check := func(at *Path, op, name string) bool {
		errs = append(errs, validateHeaderName(at, name)...)
		if !isHeaderName(name) {
			return false
		}
		if slices.Contains(headersProxyOwns, name) {
			errs = append(errs, Invalid(at, "%s is managed by the proxy and cannot be edited", quote(name)))
			return false
		}
		first, dup := seen[name]
		switch {
		case !dup:
			seen[name] = use{op: op, path: at}
		case op == "add" && first.op == "add":
			// Adding several values to one header is what add is for.
		default:
			errs = append(errs, Invalid(at, "header %s is already edited at %s: edit a header in one place (only add may repeat)", quote(name), first.path))
		}
		return true
	}
	for i, h := range e.Set {
		at := path.Child("set").Index(i)
		if check(at.Child("name"), "set", h.Name) {
			errs = append(errs, validateHeaderValue(at.Child("value"), h.Value)...)
		}
	}
	for i, h := range e.Add {
		at := path.Child("add").Index(i)
		if check(at.Child("name"), "add", h.Name) {
			errs = append(errs, validateHeaderValue(at.Child("value"), h.Value)...)
		}
	}
	for i, name := range e.Remove {
		check(path.Child("remove").Index(i), "remove", name)
	}
	return errs
}

// headerNameRule says what isHeaderName accepts.
const headerNameRule = "a lower-case HTTP token of at most 256 characters: a-z, 0-9 and !#$%&'*+-.^_`|~"
