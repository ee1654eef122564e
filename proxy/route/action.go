package route

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/proxy/filter"
	"github.com/weftmesh/weft/proxy/xdswire"
)

// Backend is one cluster of a weighted split.
type Backend[T any] struct {
	Cluster string
	Target  T
	// Weight is the backend's own weight; its share is Weight over the
	// sum of the route's weights.
	Weight uint64
	weight uint64 // cumulative: this backend takes picks below it
}

// Pick returns the cluster of one request: the route's single cluster, or
// one of its weighted clusters drawn by weight. It takes no lock.
func (r *Route[T]) Pick() (string, T) {
	if len(r.Backends) == 0 {
		return r.Cluster, r.Target
	}
	n := rand.Uint64N(r.totalWeight)
	for i := range r.Backends {
		if n < r.Backends[i].weight {
			return r.Backends[i].Cluster, r.Backends[i].Target
		}
	}
	b := &r.Backends[len(r.Backends)-1]
	return b.Cluster, b.Target
}

func compileWeighted[T any](r *Route[T], wc *routev3.WeightedCluster, resolve func(string) T, path string) error {
	var total uint64
	for i, c := range wc.GetClusters() {
		cpath := fmt.Sprintf("%s.clusters[%d]", path, i)
		if c.GetName() == "" {
			return fieldErr(cpath+".name", "a cluster name is required")
		}
		w := uint64(c.GetWeight().GetValue())
		if w == 0 {
			continue // never picked, as in Envoy
		}
		total += w
		r.Backends = append(r.Backends, Backend[T]{Cluster: c.GetName(), Target: resolve(c.GetName()), Weight: w, weight: total})
	}
	if total == 0 {
		return fieldErr(path+".clusters", "at least one cluster with a weight above zero is required")
	}
	r.totalWeight = total
	return nil
}

// FractionalPercent is a share of requests: Numerator out of Denominator.
type FractionalPercent struct{ Numerator, Denominator uint32 }

// Sample draws whether one request falls in the share.
func (p FractionalPercent) Sample() bool {
	if p.Numerator == 0 {
		return false
	}
	if p.Numerator >= p.Denominator {
		return true
	}
	return rand.Uint32N(p.Denominator) < p.Numerator
}

func compilePercent(p *typev3.FractionalPercent, path string) (FractionalPercent, error) {
	f := FractionalPercent{Numerator: p.GetNumerator()}
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		f.Denominator = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		f.Denominator = 10_000
	case typev3.FractionalPercent_MILLION:
		f.Denominator = 1_000_000
	default:
		return f, fieldErr(path+".denominator", "unknown denominator %v", p.GetDenominator())
	}
	return f, nil
}

// Mirror is a request_mirror_policy: a share of requests is copied to
// another cluster.
type Mirror[T any] struct {
	Cluster string
	Target  T
	Share   FractionalPercent
}

func compileMirror[T any](m *routev3.RouteAction_RequestMirrorPolicy, resolve func(string) T, path string) (Mirror[T], error) {
	mr := Mirror[T]{Cluster: m.GetCluster(), Share: FractionalPercent{Numerator: 100, Denominator: 100}}
	if mr.Cluster == "" {
		return mr, fieldErr(path+".cluster", "a cluster name is required")
	}
	mr.Target = resolve(mr.Cluster)
	if rf := m.GetRuntimeFraction(); rf != nil {
		if rf.GetDefaultValue() == nil {
			return mr, fieldErr(path+".runtime_fraction.default_value", "a default value is required")
		}
		var err error
		if mr.Share, err = compilePercent(rf.GetDefaultValue(), path+".runtime_fraction.default_value"); err != nil {
			return mr, err
		}
	}
	return mr, nil
}

// HeaderEdits are the header changes of one level (route or virtual host):
// removals first, then additions, as Envoy applies them.
type HeaderEdits struct {
	Remove []string // canonical names
	Add    []HeaderAdd
}

// HeaderAction is how a HeaderAdd treats an existing header.
type HeaderAction uint8

// The append_action values of a HeaderValueOption.
const (
	AppendOrAdd HeaderAction = iota
	AddIfAbsent
	OverwriteOrAdd
	OverwriteIfExists
)

// HeaderAdd is one header to add.
type HeaderAdd struct {
	Name   string // canonical
	Value  []string
	Action HeaderAction
}

// Apply edits h in place.
func (e *HeaderEdits) Apply(h http.Header) {
	for _, k := range e.Remove {
		delete(h, k)
	}
	for i := range e.Add {
		a := &e.Add[i]
		old, exists := h[a.Name]
		switch a.Action {
		case AppendOrAdd:
			if exists {
				h[a.Name] = append(old[:len(old):len(old)], a.Value[0])
			} else {
				h[a.Name] = a.Value
			}
		case AddIfAbsent:
			if !exists {
				h[a.Name] = a.Value
			}
		case OverwriteOrAdd:
			h[a.Name] = a.Value
		case OverwriteIfExists:
			if exists {
				h[a.Name] = a.Value
			}
		}
	}
}

// Empty reports whether there is nothing to edit.
func (e *HeaderEdits) Empty() bool { return len(e.Remove) == 0 && len(e.Add) == 0 }

func compileHeaderEdits(add []*corev3.HeaderValueOption, remove []string, path, addField, removeField string) (HeaderEdits, error) {
	var e HeaderEdits
	for i, name := range remove {
		p := fmt.Sprintf("%s.%s[%d]", path, removeField, i)
		if err := checkEditableHeader(name); err != nil {
			return e, &xdswire.FieldError{Path: p, Err: err}
		}
		e.Remove = append(e.Remove, textproto.CanonicalMIMEHeaderKey(name))
	}
	for i, o := range add {
		p := fmt.Sprintf("%s.%s[%d]", path, addField, i)
		name := o.GetHeader().GetKey()
		if err := checkEditableHeader(name); err != nil {
			return e, &xdswire.FieldError{Path: p + ".header.key", Err: err}
		}
		v, err := literalValue(o.GetHeader().GetValue())
		if err != nil {
			return e, &xdswire.FieldError{Path: p + ".header.value", Err: err}
		}
		if v == "" {
			// Envoy drops a header whose value is empty unless
			// keep_empty_value is set, which this proxy does not take.
			continue
		}
		a := HeaderAdd{Name: textproto.CanonicalMIMEHeaderKey(name), Value: []string{v}}
		switch act := o.GetAppendAction(); act {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			a.Action = AppendOrAdd
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			a.Action = AddIfAbsent
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			a.Action = OverwriteOrAdd
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			a.Action = OverwriteIfExists
		default:
			return e, fieldErr(p+".append_action", "unknown append action %v", act)
		}
		e.Add = append(e.Add, a)
	}
	return e, nil
}

func checkEditableHeader(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("a header name is required")
	case name[0] == ':' || strings.EqualFold(name, "host"):
		return fmt.Errorf("header %q cannot be edited", name)
	case strings.ContainsAny(name, " \t\r\n:"):
		return fmt.Errorf("header name %q is not a token", name)
	}
	return nil
}

// literalValue unescapes "%%": Envoy reads any other "%" as the start of a
// substitution, which this proxy does not implement.
func literalValue(v string) (string, error) {
	if strings.ContainsAny(v, "\r\n\x00") {
		return "", fmt.Errorf("value holds a control character")
	}
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		return "", fmt.Errorf("substitution in %q is not supported (write %%%% for a literal %%)", v)
	}
	return b.String(), nil
}

// RetryOn is a set of retry conditions.
type RetryOn uint16

// The retry_on conditions.
const (
	Retry5xx RetryOn = 1 << iota
	RetryGatewayError
	RetryReset
	RetryConnectFailure
	RetryStatusCodes
	RetryGRPCCancelled
	RetryGRPCDeadlineExceeded
	RetryGRPCInternal
	RetryGRPCResourceExhausted
	RetryGRPCUnavailable
)

var retryOnNames = map[string]RetryOn{
	"5xx":                    Retry5xx,
	"gateway-error":          RetryGatewayError,
	"reset":                  RetryReset,
	"connect-failure":        RetryConnectFailure,
	"retriable-status-codes": RetryStatusCodes,
	"cancelled":              RetryGRPCCancelled,
	"deadline-exceeded":      RetryGRPCDeadlineExceeded,
	"internal":               RetryGRPCInternal,
	"resource-exhausted":     RetryGRPCResourceExhausted,
	"unavailable":            RetryGRPCUnavailable,
}

// String lists the conditions as retry_on does, comma-separated, sorted.
func (o RetryOn) String() string {
	var names []string
	for name, bit := range retryOnNames {
		if o&bit != 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// RetryPolicy is a compiled retry_policy.
type RetryPolicy struct {
	On          RetryOn
	NumRetries  int
	PerTry      time.Duration // zero: none
	StatusCodes []int
	BaseBackOff time.Duration
	MaxBackOff  time.Duration
}

// BackOff returns the wait before retry n (0 for the first retry): fully
// jittered, random in [0, base·2^n), capped at the maximum, as Envoy does.
func (p *RetryPolicy) BackOff(n int) time.Duration {
	ceil := p.BaseBackOff
	for i := 0; i < n && ceil < p.MaxBackOff; i++ {
		ceil *= 2
	}
	if ceil > p.MaxBackOff {
		ceil = p.MaxBackOff
	}
	if ceil <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceil)))
}

func compileRetry(rp *routev3.RetryPolicy, path string) (*RetryPolicy, error) {
	p := &RetryPolicy{NumRetries: 1, BaseBackOff: 25 * time.Millisecond}
	for _, tok := range strings.Split(rp.GetRetryOn(), ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		on, ok := retryOnNames[tok]
		if !ok {
			return nil, fieldErr(path+".retry_on", "condition %q is not supported", tok)
		}
		p.On |= on
	}
	if n := rp.GetNumRetries(); n != nil {
		p.NumRetries = int(n.GetValue())
	}
	if d := rp.GetPerTryTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return nil, fieldErr(path+".per_try_timeout", "invalid duration")
		}
		p.PerTry = d.AsDuration()
	}
	for i, c := range rp.GetRetriableStatusCodes() {
		if c < 100 || c > 599 {
			return nil, fieldErr(fmt.Sprintf("%s.retriable_status_codes[%d]", path, i), "%d is not an HTTP status", c)
		}
		p.StatusCodes = append(p.StatusCodes, int(c))
	}
	if bo := rp.GetRetryBackOff(); bo != nil {
		d := bo.GetBaseInterval()
		if d == nil || d.CheckValid() != nil || d.AsDuration() <= 0 {
			return nil, fieldErr(path+".retry_back_off.base_interval", "a positive duration is required")
		}
		p.BaseBackOff = d.AsDuration()
		if m := bo.GetMaxInterval(); m != nil {
			if m.CheckValid() != nil || m.AsDuration() < p.BaseBackOff {
				return nil, fieldErr(path+".retry_back_off.max_interval", "must be a duration no less than base_interval")
			}
			p.MaxBackOff = m.AsDuration()
		}
	}
	if p.MaxBackOff == 0 {
		p.MaxBackOff = 10 * p.BaseBackOff
	}
	return p, nil
}

// RetriableStatus reports whether a response with this status and
// grpc-status header (empty when absent) may be retried.
func (p *RetryPolicy) RetriableStatus(code int, grpcStatus string) bool {
	if p.On&Retry5xx != 0 && code >= 500 && code <= 599 {
		return true
	}
	if p.On&RetryGatewayError != 0 && (code == 502 || code == 503 || code == 504) {
		return true
	}
	if p.On&RetryStatusCodes != 0 {
		for _, c := range p.StatusCodes {
			if c == code {
				return true
			}
		}
	}
	if grpcStatus == "" || p.On&(RetryGRPCCancelled|RetryGRPCDeadlineExceeded|RetryGRPCInternal|RetryGRPCResourceExhausted|RetryGRPCUnavailable) == 0 {
		return false
	}
	switch s, _ := strconv.Atoi(grpcStatus); s {
	case 1:
		return p.On&RetryGRPCCancelled != 0
	case 4:
		return p.On&RetryGRPCDeadlineExceeded != 0
	case 8:
		return p.On&RetryGRPCResourceExhausted != 0
	case 13:
		return p.On&RetryGRPCInternal != 0
	case 14:
		return p.On&RetryGRPCUnavailable != 0
	}
	return false
}

// RetriableFailure reports whether an exchange that failed before any
// response may be retried: connectFailure when no connection could be
// made, timeout when the per-try timeout ended it.
func (p *RetryPolicy) RetriableFailure(connectFailure bool) bool {
	if p.On&(Retry5xx|RetryGatewayError|RetryReset) != 0 {
		return true
	}
	return connectFailure && p.On&RetryConnectFailure != 0
}

// HashKind is what a hash policy hashes.
type HashKind uint8

// Hash policy kinds.
const (
	HashHeader HashKind = iota
	HashCookie
	HashSourceIP
)

// HashPolicy is one hash_policy entry.
type HashPolicy struct {
	Kind       HashKind
	Name       string // canonical header name or cookie name
	CookieTTL  time.Duration
	HasTTL     bool
	CookiePath string
	Terminal   bool
}

func compileHashPolicy(h *routev3.RouteAction_HashPolicy, path string) (HashPolicy, error) {
	hp := HashPolicy{Terminal: h.GetTerminal()}
	switch s := h.GetPolicySpecifier().(type) {
	case *routev3.RouteAction_HashPolicy_Header_:
		name := s.Header.GetHeaderName()
		if name == "" || name[0] == ':' {
			return hp, fieldErr(path+".header.header_name", "a header name (not a pseudo-header) is required")
		}
		hp.Kind, hp.Name = HashHeader, textproto.CanonicalMIMEHeaderKey(name)
	case *routev3.RouteAction_HashPolicy_Cookie_:
		if s.Cookie.GetName() == "" {
			return hp, fieldErr(path+".cookie.name", "a cookie name is required")
		}
		hp.Kind, hp.Name, hp.CookiePath = HashCookie, s.Cookie.GetName(), s.Cookie.GetPath()
		if ttl := s.Cookie.GetTtl(); ttl != nil {
			if ttl.CheckValid() != nil || ttl.AsDuration() < 0 {
				return hp, fieldErr(path+".cookie.ttl", "invalid duration")
			}
			hp.CookieTTL, hp.HasTTL = ttl.AsDuration(), true
		}
	case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
		if !s.ConnectionProperties.GetSourceIp() {
			return hp, fieldErr(path+".connection_properties.source_ip", "must be true")
		}
		hp.Kind = HashSourceIP
	default:
		return hp, fieldErr(path, "header, cookie or connection_properties is required")
	}
	return hp, nil
}

// compilePerFilter compiles typed_per_filter_config through the filter
// registry, keyed by the filter's name in the connection manager.
func compilePerFilter(m map[string]*anypb.Any, path string) (map[string]any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(m))
	for name, a := range m {
		p := fmt.Sprintf("%s.typed_per_filter_config[%q]", path, name)
		f, ok := filter.ByConfig(a.MessageName())
		if !ok || f.PerRoute == nil {
			return nil, fieldErr(p, "%s has no per-route config in this proxy", a.MessageName())
		}
		cfg := f.Config.ProtoReflect().New().Interface()
		if err := xdswire.UnmarshalAny(a, cfg); err != nil {
			return nil, &xdswire.FieldError{Path: p, Err: err}
		}
		c, err := f.PerRoute(cfg)
		if err != nil {
			return nil, &xdswire.FieldError{Path: p, Err: err}
		}
		out[name] = c
	}
	return out, nil
}
