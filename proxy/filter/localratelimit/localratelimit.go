// Package localratelimit is Envoy's local rate limit filter
// (envoy.filters.http.local_ratelimit): token buckets kept in this proxy,
// configured per route through typed_per_filter_config. A route's config
// replaces the listener's whole, as in Envoy. Descriptors whose entries
// have an empty value give each distinct value its own bucket, which is how
// each calling service gets its own.
//
// Routes whose configs are equal share their buckets, and keep them across
// config updates for as long as some route still holds that config; Envoy
// instead gives each route its own buckets and starts them full again on
// every update.
package localratelimit

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	commonratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/proxy/filter"
	"github.com/weftmesh/weft/proxy/filter/ratelimit/descriptor"
	"github.com/weftmesh/weft/proxy/xdswire"
)

// Name is the filter's name in http_filters and typed_per_filter_config.
const Name = "envoy.filters.http.local_ratelimit"

func init() {
	filter.Register(filter.Factory{
		Name:   Name,
		Config: &localratelimitv3.LocalRateLimit{},
		New: func(cfg proto.Message, _ filter.Env) (filter.HTTP, error) {
			c, err := Shared(cfg.(*localratelimitv3.LocalRateLimit))
			if err != nil {
				return nil, err
			}
			return &Filter{base: c}, nil
		},
		PerRoute: func(cfg proto.Message) (any, error) { return Shared(cfg.(*localratelimitv3.LocalRateLimit)) },
	})
}

// Envoy's defaults.
const (
	defaultMaxDynamicDescriptors = 20
	grpcResourceExhausted        = 8
	body                         = "local_rate_limited"
)

// Config is a compiled LocalRateLimit with its buckets.
type Config struct {
	enabled, enforced share
	// bucket is the default bucket; nil when the config has none.
	bucket        *Bucket
	descriptors   []descriptorBuckets
	rateLimits    []descriptor.RateLimit
	alwaysConsume bool

	status        int
	grpcExhausted bool
	xHeaders      bool
	retryAfter    bool
}

// descriptorBuckets is a configured descriptor and its bucket, or its
// buckets per value when an entry's value is empty (a wildcard).
type descriptorBuckets struct {
	entries []descriptor.Entry
	fixed   *Bucket
	perKey  *sourceBuckets
}

// share is a FractionalPercent: numerator out of denominator.
type share struct{ num, den uint32 }

func (s share) sample() bool {
	if s.num >= s.den {
		return true
	}
	return s.num > 0 && rand.Uint32N(s.den) < s.num
}

// shared holds the configs in use, by stat_prefix, so that equal configs
// share buckets. An entry lives as long as a route holds its config. The
// configs are compared field by field (xdswire.Equal): encoding them as a
// key would make protobuf-go build the descriptors of every message type a
// LocalRateLimit can hold.
var shared = struct {
	sync.Mutex
	m map[string][]*sharedConfig
}{m: map[string][]*sharedConfig{}}

type sharedConfig struct {
	msg *localratelimitv3.LocalRateLimit // never modified
	cfg weak.Pointer[Config]
}

// Shared returns the compiled config of c: the one already in use for an
// equal config, with its buckets, or a new one.
func Shared(c *localratelimitv3.LocalRateLimit) (*Config, error) {
	prefix := c.GetStatPrefix()
	shared.Lock()
	defer shared.Unlock()
	for _, e := range shared.m[prefix] {
		if cfg := e.cfg.Value(); cfg != nil && xdswire.Equal(e.msg, c) {
			return cfg, nil
		}
	}
	cfg, err := Compile(c)
	if err != nil {
		return nil, err
	}
	e := &sharedConfig{msg: c, cfg: weak.Make(cfg)}
	shared.m[prefix] = append(shared.m[prefix], e)
	runtime.AddCleanup(cfg, func(e *sharedConfig) {
		shared.Lock()
		defer shared.Unlock()
		list := slices.DeleteFunc(shared.m[prefix], func(x *sharedConfig) bool { return x == e })
		if len(list) == 0 {
			delete(shared.m, prefix)
		} else {
			shared.m[prefix] = list
		}
	}, e)
	return cfg, nil
}

// Compile checks and compiles a LocalRateLimit into a config with new,
// full buckets. Errors start with the field path.
func Compile(c *localratelimitv3.LocalRateLimit) (*Config, error) {
	if c.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: is required")
	}
	cfg := &Config{status: http.StatusTooManyRequests, alwaysConsume: true}
	var err error
	if cfg.enabled, err = compileShare(c.GetFilterEnabled(), "filter_enabled"); err != nil {
		return nil, err
	}
	if cfg.enforced, err = compileShare(c.GetFilterEnforced(), "filter_enforced"); err != nil {
		return nil, err
	}
	if tb := c.GetTokenBucket(); tb != nil {
		spec, err := compileBucket(tb, "token_bucket")
		if err != nil {
			return nil, err
		}
		cfg.bucket = newBucket(spec)
	}
	maxDynamic := int64(defaultMaxDynamicDescriptors)
	if m := c.GetMaxDynamicDescriptors(); m != nil {
		if m.GetValue() == 0 {
			return nil, errors.New("max_dynamic_descriptors: must be at least 1")
		}
		maxDynamic = int64(m.GetValue())
	}
	for i, d := range c.GetDescriptors() {
		db, err := compileDescriptor(d, maxDynamic, fmt.Sprintf("descriptors[%d]", i))
		if err != nil {
			return nil, err
		}
		cfg.descriptors = append(cfg.descriptors, db)
	}
	if cfg.rateLimits, err = descriptor.Compile(c.GetRateLimits(), "rate_limits"); err != nil {
		return nil, err
	}
	if len(cfg.descriptors) > 0 && len(cfg.rateLimits) == 0 {
		// Envoy would take them from the route's rate_limits, which this
		// proxy does not read.
		return nil, errors.New("rate_limits: is required with descriptors")
	}
	if a := c.GetAlwaysConsumeDefaultTokenBucket(); a != nil {
		cfg.alwaysConsume = a.GetValue()
	}
	if s := c.GetStatus(); s != nil && s.GetCode() >= 400 {
		cfg.status = int(s.GetCode())
	}
	switch v := c.GetEnableXRatelimitHeaders(); v {
	case commonratelimitv3.XRateLimitHeadersRFCVersion_OFF:
	case commonratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03:
		cfg.xHeaders = true
	default:
		return nil, fmt.Errorf("enable_x_ratelimit_headers: %v is not supported", v)
	}
	cfg.grpcExhausted = c.GetRateLimitedAsResourceExhausted()
	cfg.retryAfter = c.GetEnableRetryAfterHeader()
	return cfg, nil
}

func compileBucket(tb *typev3.TokenBucket, path string) (bucketSpec, error) {
	s := bucketSpec{maxTokens: tb.GetMaxTokens(), tokensPerFill: 1}
	if s.maxTokens == 0 {
		return s, fmt.Errorf("%s.max_tokens: must be at least 1", path)
	}
	if v := tb.GetTokensPerFill(); v != nil {
		if v.GetValue() == 0 {
			return s, fmt.Errorf("%s.tokens_per_fill: must be at least 1", path)
		}
		s.tokensPerFill = v.GetValue()
	}
	fi := tb.GetFillInterval()
	if fi == nil || fi.CheckValid() != nil || fi.AsDuration() < time.Millisecond {
		return s, fmt.Errorf("%s.fill_interval: must be at least 1ms", path)
	}
	s.fillInterval = fi.AsDuration()
	return s, nil
}

func compileDescriptor(d *commonratelimitv3.LocalRateLimitDescriptor, maxDynamic int64, path string) (descriptorBuckets, error) {
	var db descriptorBuckets
	if len(d.GetEntries()) == 0 {
		return db, fmt.Errorf("%s.entries: at least one entry is required", path)
	}
	wildcard := false
	for j, e := range d.GetEntries() {
		if e.GetKey() == "" {
			return db, fmt.Errorf("%s.entries[%d].key: is required", path, j)
		}
		wildcard = wildcard || e.GetValue() == ""
		db.entries = append(db.entries, descriptor.Entry{Key: e.GetKey(), Value: e.GetValue()})
	}
	if d.GetTokenBucket() == nil {
		return db, fmt.Errorf("%s.token_bucket: is required", path)
	}
	spec, err := compileBucket(d.GetTokenBucket(), path+".token_bucket")
	if err != nil {
		return db, err
	}
	if wildcard {
		db.perKey = &sourceBuckets{spec: spec, max: maxDynamic}
	} else {
		db.fixed = newBucket(spec)
	}
	return db, nil
}

func compileShare(p *corev3.RuntimeFractionalPercent, path string) (share, error) {
	if p == nil {
		// Envoy enables and enforces nothing unless told to.
		return share{den: 100}, nil
	}
	v := p.GetDefaultValue()
	s := share{num: v.GetNumerator()}
	switch v.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		s.den = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		s.den = 10_000
	case typev3.FractionalPercent_MILLION:
		s.den = 1_000_000
	default:
		return s, fmt.Errorf("%s.default_value.denominator: unknown denominator %v", path, v.GetDenominator())
	}
	return s, nil
}

// bucketFor is the bucket of the configured descriptor that d matches, or
// nil: every entry must have the same key and, unless the configured value
// is empty, the same value.
func (db *descriptorBuckets) bucketFor(d descriptor.Descriptor) *Bucket {
	if len(d) != len(db.entries) {
		return nil
	}
	key := ""
	for i, e := range db.entries {
		if d[i].Key != e.Key || (e.Value != "" && d[i].Value != e.Value) {
			return nil
		}
		if e.Value == "" {
			key = d[i].Value
		}
	}
	if db.perKey != nil {
		if len(db.entries) > 1 {
			key = joinValues(d)
		}
		return db.perKey.get(key)
	}
	return db.fixed
}

func joinValues(d descriptor.Descriptor) string {
	var b strings.Builder
	for _, e := range d {
		b.WriteString(e.Value)
		b.WriteByte(0)
	}
	return b.String()
}

// Decide takes a token for one request from each bucket it counts against:
// those of the descriptors it matches and, unless one matched and
// always_consume_default_token_bucket is false, the default bucket.
func (c *Config) Decide(r *http.Request, s *filter.Stream) filter.Decision {
	if !c.enabled.sample() {
		return filter.Continue
	}
	t := now()
	matched := false
	if len(c.descriptors) > 0 {
		var buf [4]descriptor.Entry
		for i := range c.rateLimits {
			d, ok := c.rateLimits[i].Append(buf[:0], s)
			if !ok {
				continue
			}
			for j := range c.descriptors {
				b := c.descriptors[j].bucketFor(d)
				if b == nil {
					continue
				}
				matched = true
				if ok, wait := takeNow(b, t); !ok {
					return c.refuse(r, b, wait)
				}
				break
			}
		}
	}
	if c.bucket != nil && (!matched || c.alwaysConsume) {
		if ok, wait := takeNow(c.bucket, t); !ok {
			return c.refuse(r, c.bucket, wait)
		}
	}
	return filter.Continue
}

// takeNow takes a token at time t, read before the request's first bucket.
// A request whose goroutine was held up after reading the clock may find
// the bucket advanced past t by others; before refusing it, it looks at
// the clock again.
func takeNow(b *Bucket, t float64) (ok bool, wait time.Duration) {
	if ok, _, _ = b.take(t); ok {
		return true, 0
	}
	ok, _, wait = b.take(now())
	return ok, wait
}

// refuse answers a request that found bucket b empty, unless the filter
// only counts (filter_enforced).
func (c *Config) refuse(r *http.Request, b *Bucket, wait time.Duration) filter.Decision {
	if !c.enforced.sample() {
		return filter.Continue
	}
	reply := &filter.Reply{Status: c.status, Body: body, Reason: body, Header: http.Header{}}
	// Whole seconds, at least 1; a microsecond of rounding does not add one.
	secs := strconv.Itoa(int(max(math.Ceil(wait.Seconds()-1e-6), 1)))
	if c.xHeaders {
		limit := strconv.FormatUint(uint64(b.spec.maxTokens), 10)
		window := strconv.Itoa(int(math.Ceil(b.spec.fillInterval.Seconds())))
		reply.Header["X-Ratelimit-Limit"] = []string{limit + ", " + limit + ";w=" + window}
		reply.Header["X-Ratelimit-Remaining"] = []string{"0"}
		reply.Header["X-Ratelimit-Reset"] = []string{secs}
	}
	if c.retryAfter {
		reply.Header["Retry-After"] = []string{secs}
	}
	if c.grpcExhausted && isGRPC(r) {
		code := grpcResourceExhausted
		reply.GRPCStatus = &code
	}
	return filter.Decision{Reply: reply}
}

func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/grpc") &&
		(len(ct) == len("application/grpc") || ct[len("application/grpc")] == '+' || ct[len("application/grpc")] == ';')
}

// Filter is the local rate limit filter of one connection manager.
type Filter struct {
	base *Config
}

// DecodeHeaders applies the route's config, or the filter's own when the
// route has none.
func (f *Filter) DecodeHeaders(r *http.Request, s *filter.Stream, perRoute any) filter.Decision {
	c := f.base
	if pr, ok := perRoute.(*Config); ok && pr != nil {
		c = pr
	}
	return c.Decide(r, s)
}

var _ filter.HTTP = (*Filter)(nil)
