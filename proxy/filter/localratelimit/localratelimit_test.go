package localratelimit

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	exprv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rate_limit_descriptors/expr/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/filter"
)

var all = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}}

func bucket(max, perFill uint32, every time.Duration) *typev3.TokenBucket {
	return &typev3.TokenBucket{MaxTokens: max, TokensPerFill: wrapperspb.UInt32(perFill), FillInterval: durationpb.New(every)}
}

// config is what the translator sends for a limit: one bucket, or one per
// calling service.
func config(prefix string, tb *typev3.TokenBucket, perSource bool) *localratelimitv3.LocalRateLimit {
	c := &localratelimitv3.LocalRateLimit{
		StatPrefix: prefix, TokenBucket: tb, FilterEnabled: all, FilterEnforced: all,
		EnableXRatelimitHeaders:        commonratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
		RateLimitedAsResourceExhausted: true, EnableRetryAfterHeader: true,
	}
	if perSource {
		expr, _ := anypb.New(&exprv3.Descriptor{DescriptorKey: "source", ExprSpecifier: &exprv3.Descriptor_Text{Text: xdsmeta.PeerIdentityExpr}})
		c.Descriptors = []*commonratelimitv3.LocalRateLimitDescriptor{{
			Entries: []*commonratelimitv3.RateLimitDescriptor_Entry{{Key: "source"}}, TokenBucket: tb,
		}}
		c.RateLimits = []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_Extension{
			Extension: &corev3.TypedExtensionConfig{Name: "envoy.rate_limit_descriptors.expr", TypedConfig: expr},
		}}}}}
		c.AlwaysConsumeDefaultTokenBucket = wrapperspb.Bool(false)
	}
	return c
}

func mustCompile(t testing.TB, c *localratelimitv3.LocalRateLimit) *Config {
	t.Helper()
	cfg, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// stream is a request's stream from the caller with SPIFFE ID id ("" for none).
func stream(id string) *filter.Stream {
	s := &filter.Stream{}
	if id != "" {
		u, _ := url.Parse(id)
		s.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{u}}}}
	}
	return s
}

func get() *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) }

func TestBucketBurstThenRate(t *testing.T) {
	b := newBucket(bucketSpec{maxTokens: 5, tokensPerFill: 10, fillInterval: time.Second})
	const t0 = 100.0
	for i := range 5 {
		if ok, left, _ := b.take(t0); !ok || left != uint32(4-i) {
			t.Fatalf("take %d: ok=%v remaining=%d, want true and %d", i, ok, left, 4-i)
		}
	}
	ok, _, wait := b.take(t0)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("take from an empty bucket: ok=%v wait=%v, want false and at most 100ms", ok, wait)
	}
	// 10 per second: one token back every 100ms, never more than 5.
	if ok, _, _ := b.take(t0 + 0.1); !ok {
		t.Fatal("no token 100ms later")
	}
	if ok, _, _ := b.take(t0 + 0.1); ok {
		t.Fatal("two tokens 100ms later")
	}
	n := 0
	for {
		if ok, _, _ := b.take(t0 + 120); !ok {
			break
		}
		n++
	}
	if n != 5 {
		t.Fatalf("after a long idle the bucket let %d through, want its size 5", n)
	}
}

// TestBucketConcurrent: however many goroutines race for a full bucket at
// one instant, exactly its size gets through.
func TestBucketConcurrent(t *testing.T) {
	b := newBucket(bucketSpec{maxTokens: 1000, tokensPerFill: 1, fillInterval: time.Hour})
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if ok, _, _ := b.take(50); ok {
					got.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got.Load() != 1000 {
		t.Fatalf("%d takes succeeded, want 1000", got.Load())
	}
}

func TestRefusalReply(t *testing.T) {
	cfg := mustCompile(t, config("reply", bucket(2, 2, time.Minute), false))
	for range 2 {
		if d := cfg.Decide(get(), stream("")); d.Reply != nil {
			t.Fatalf("refused within the burst: %+v", d.Reply)
		}
	}
	d := cfg.Decide(get(), stream(""))
	if d.Reply == nil {
		t.Fatal("third request within a minute let through")
	}
	r := d.Reply
	if r.Status != 429 || r.GRPCStatus != nil || r.Reason != "local_rate_limited" {
		t.Errorf("reply %+v, want 429 local_rate_limited", r)
	}
	// Two per minute: the next token is about 30s away.
	if got := r.Header.Get("Retry-After"); got != "30" && got != "29" {
		t.Errorf("retry-after %q, want 30", got)
	}
	if got, want := r.Header.Get("X-Ratelimit-Limit"), "2, 2;w=60"; got != want {
		t.Errorf("x-ratelimit-limit %q, want %q", got, want)
	}
	if r.Header.Get("X-Ratelimit-Remaining") != "0" || r.Header.Get("X-Ratelimit-Reset") == "" {
		t.Errorf("x-ratelimit headers %v", r.Header)
	}

	g := get()
	g.Header.Set("Content-Type", "application/grpc+proto")
	if d := cfg.Decide(g, stream("")); d.Reply == nil || d.Reply.GRPCStatus == nil || *d.Reply.GRPCStatus != 8 {
		t.Errorf("gRPC refusal %+v, want RESOURCE_EXHAUSTED", d.Reply)
	}
}

// TestPerSource: each caller has its own bucket, and a request without an
// identity falls back to the default bucket.
func TestPerSource(t *testing.T) {
	cfg := mustCompile(t, config("per-source", bucket(3, 3, time.Hour), true))
	count := func(id string) int {
		n := 0
		for range 10 {
			if cfg.Decide(get(), stream(id)).Reply == nil {
				n++
			}
		}
		return n
	}
	for _, id := range []string{"spiffe://weft.local/ns/default/sa/a", "spiffe://weft.local/ns/default/sa/b", ""} {
		if n := count(id); n != 3 {
			t.Errorf("caller %q got %d through, want its own 3", id, n)
		}
	}
}

func TestSourceBucketsBounded(t *testing.T) {
	d := &sourceBuckets{spec: bucketSpec{maxTokens: 1, tokensPerFill: 1, fillInterval: time.Hour}, max: 4}
	for i := range 100 {
		d.get(strings.Repeat("x", i))
	}
	n := 0
	d.m.Range(func(any, any) bool { n++; return true })
	if n > 4 || d.n.Load() != int64(n) {
		t.Fatalf("%d buckets (counted %d), want at most 4", n, d.n.Load())
	}
}

func TestDisabledAndNotEnforced(t *testing.T) {
	c := config("off", bucket(1, 1, time.Hour), false)
	c.FilterEnabled = nil
	off := mustCompile(t, c)
	c = config("shadow", bucket(1, 1, time.Hour), false)
	c.FilterEnforced = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{}}
	shadow := mustCompile(t, c)
	for range 5 {
		if off.Decide(get(), stream("")).Reply != nil || shadow.Decide(get(), stream("")).Reply != nil {
			t.Fatal("a filter not enabled or not enforced refused a request")
		}
	}
}

func TestShared(t *testing.T) {
	a, err := Shared(config("shared.a", bucket(1, 1, time.Hour), false))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Shared(config("shared.a", bucket(1, 1, time.Hour), false))
	other, _ := Shared(config("shared.b", bucket(1, 1, time.Hour), false))
	if a != again || a == other {
		t.Fatalf("equal configs share = %v, different ones share = %v", a == again, a == other)
	}
	if a.Decide(get(), stream("")).Reply != nil || again.Decide(get(), stream("")).Reply == nil {
		t.Fatal("routes with the same limit do not share its bucket")
	}
	// Another limit under the same stat_prefix is not the same config.
	if larger, _ := Shared(config("shared.a", bucket(2, 1, time.Hour), false)); larger == a {
		t.Fatal("a larger bucket with the same stat_prefix shares the smaller one")
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*localratelimitv3.LocalRateLimit)
		want string
	}{
		{"no stat prefix", func(c *localratelimitv3.LocalRateLimit) { c.StatPrefix = "" }, "stat_prefix: is required"},
		{"empty bucket", func(c *localratelimitv3.LocalRateLimit) { c.TokenBucket.MaxTokens = 0 }, "token_bucket.max_tokens: must be at least 1"},
		{"no interval", func(c *localratelimitv3.LocalRateLimit) { c.TokenBucket.FillInterval = nil }, "token_bucket.fill_interval: must be at least 1ms"},
		{"no descriptor bucket", func(c *localratelimitv3.LocalRateLimit) { c.Descriptors[0].TokenBucket = nil }, "descriptors[0].token_bucket: is required"},
		{"descriptors without actions", func(c *localratelimitv3.LocalRateLimit) { c.RateLimits = nil }, "rate_limits: is required with descriptors"},
		{"another expression", func(c *localratelimitv3.LocalRateLimit) {
			expr, _ := anypb.New(&exprv3.Descriptor{DescriptorKey: "source", ExprSpecifier: &exprv3.Descriptor_Text{Text: "request.path"}})
			c.RateLimits[0].Actions[0].GetExtension().TypedConfig = expr
		}, `rate_limits[0].actions[0].extension.typed_config.text: only the expression "connection.uri_san_peer_certificate" is supported`},
		{"another action", func(c *localratelimitv3.LocalRateLimit) {
			c.RateLimits[0].Actions[0].ActionSpecifier = &routev3.RateLimit_Action_RemoteAddress_{RemoteAddress: &routev3.RateLimit_Action_RemoteAddress{}}
		}, "rate_limits[0].actions[0]: only generic_key and the envoy.rate_limit_descriptors.expr extension are supported"},
		{"headers", func(c *localratelimitv3.LocalRateLimit) {
			c.EnableXRatelimitHeaders = commonratelimitv3.XRateLimitHeadersRFCVersion(7)
		}, "enable_x_ratelimit_headers: 7 is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config("errors", bucket(1, 1, time.Second), true)
			tc.edit(c)
			if _, err := Compile(c); err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	for _, bc := range []struct {
		name      string
		perSource bool
	}{{"one-bucket", false}, {"per-source", true}} {
		b.Run(bc.name, func(b *testing.B) {
			// Large enough never to refuse: the cost measured is that of
			// a request let through.
			cfg := mustCompile(b, config("bench", bucket(1<<30, 1<<30, time.Second), bc.perSource))
			r := get()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				s := stream("spiffe://weft.local/ns/default/sa/client")
				s.PeerID()
				for pb.Next() {
					if cfg.Decide(r, s).Reply != nil {
						b.Fatal("refused")
					}
				}
			})
		})
	}
}
