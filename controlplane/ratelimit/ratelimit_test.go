package ratelimit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"hash/maphash"
	"strconv"
	"strings"
	"testing"
	"time"

	commonratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/translate"
	"github.com/weftmesh/weft/internal/testpki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const trustDomain = "weft.local"

// clock is a settable time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// catalogLimits is a mesh whose catalog has a global limit of 3 a second
// for everyone, one of 2 a minute per calling service, and a local one.
func catalogLimits() *translate.Input {
	return &translate.Input{RateLimits: map[translate.ServiceKey]*v1alpha1.RateLimitSpec{
		{Namespace: "shop", Name: "catalog"}: {Limits: []v1alpha1.Limit{
			{Name: "all", Global: &v1alpha1.GlobalLimit{Requests: 3, Unit: v1alpha1.UnitSecond}},
			{Name: "each", PerSource: true, Global: &v1alpha1.GlobalLimit{Requests: 2, Unit: v1alpha1.UnitMinute}},
			{Name: "local", Local: &v1alpha1.LocalLimit{Requests: 1, Unit: v1alpha1.UnitSecond, Burst: 1}},
		}},
	}}
}

// as is a call context from a proxy of the service id names, as the gRPC
// server's TLS handshake leaves it.
func as(t *testing.T, ca *testpki.CA, id spiffe.ID) context.Context {
	t.Helper()
	cert := ca.Issue(t, id, testpki.Options{})
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	info := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}}
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: info})
}

func desc(kv ...string) *commonratelimitv3.RateLimitDescriptor {
	d := &commonratelimitv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &commonratelimitv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func request(ds ...*commonratelimitv3.RateLimitDescriptor) *rlsv3.RateLimitRequest {
	return &rlsv3.RateLimitRequest{Domain: "weft", Descriptors: ds}
}

func TestCountsInFixedWindows(t *testing.T) {
	ca := testpki.NewCA(t, "root")
	clk := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 900_000_000, time.UTC)}
	s := New(Options{TrustDomain: trustDomain, Now: clk.now})
	s.Update(catalogLimits())
	ctx := as(t, ca, spiffe.ID{TrustDomain: trustDomain, Namespace: "shop", Service: "catalog"})
	all := request(desc("destination", "catalog.shop", "limit", "all"))

	var codes []string
	for range 4 {
		resp, err := s.ShouldRateLimit(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, resp.GetOverallCode().String())
	}
	if got := strings.Join(codes, " "); got != "OK OK OK OVER_LIMIT" {
		t.Fatalf("4 requests in one second of a limit of 3: %s", got)
	}
	resp, _ := s.ShouldRateLimit(ctx, all)
	st := resp.GetStatuses()[0]
	if st.GetCurrentLimit().GetRequestsPerUnit() != 3 || st.GetCurrentLimit().GetUnit() != rlsv3.RateLimitResponse_RateLimit_SECOND ||
		st.GetDurationUntilReset().AsDuration() != 100*time.Millisecond || st.GetLimitRemaining() != 0 {
		t.Errorf("status %v, want the limit 3/s, nothing remaining, reset in 100ms", st)
	}
	// The next window starts on the second, empty.
	clk.t = clk.t.Add(100 * time.Millisecond)
	resp, _ = s.ShouldRateLimit(ctx, all)
	if resp.GetOverallCode() != rlsv3.RateLimitResponse_OK || resp.GetStatuses()[0].GetLimitRemaining() != 2 {
		t.Fatalf("first request of a new window: %v", resp)
	}
	// hits_addend counts several requests at once.
	big := request(desc("destination", "catalog.shop", "limit", "all"))
	big.Descriptors[0].HitsAddend = wrapperspb.UInt64(5)
	if resp, _ := s.ShouldRateLimit(ctx, big); resp.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("5 more hits within a limit of 3: %v", resp)
	}
}

func TestPerSourceAndUnknown(t *testing.T) {
	ca := testpki.NewCA(t, "root")
	clk := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	s := New(Options{TrustDomain: trustDomain, Now: clk.now})
	s.Update(catalogLimits())
	ctx := as(t, ca, spiffe.ID{TrustDomain: trustDomain, Namespace: "shop", Service: "catalog"})
	each := func(source string) rlsv3.RateLimitResponse_Code {
		resp, err := s.ShouldRateLimit(ctx, request(desc("destination", "catalog.shop", "limit", "each", "source", source)))
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetOverallCode()
	}
	a, b := "spiffe://weft.local/ns/shop/sa/web", "spiffe://weft.local/ns/shop/sa/admin"
	for i, want := range []rlsv3.RateLimitResponse_Code{1, 1, 2} {
		if got := each(a); got != want {
			t.Fatalf("web's request %d: %v, want %v", i, got, want)
		}
	}
	if got := each(b); got != rlsv3.RateLimitResponse_OK {
		t.Fatalf("admin's first request, after web used its share: %v", got)
	}
	// Callers without an identity share one count.
	var anonymous []string
	for range 3 {
		resp, err := s.ShouldRateLimit(ctx, request(desc("destination", "catalog.shop", "limit", "each")))
		if err != nil {
			t.Fatal(err)
		}
		anonymous = append(anonymous, resp.GetOverallCode().String())
	}
	if got := strings.Join(anonymous, " "); got != "OK OK OVER_LIMIT" {
		t.Fatalf("3 requests without a source, limit 2 per source: %s", got)
	}
	// A descriptor of no global limit, or of a limit that went, is not limited.
	for _, d := range []*commonratelimitv3.RateLimitDescriptor{
		desc("destination", "catalog.shop", "limit", "local"),
		desc("destination", "catalog.shop", "limit", "all", "source", a),
	} {
		for range 5 {
			if resp, err := s.ShouldRateLimit(ctx, request(d)); err != nil || resp.GetOverallCode() != rlsv3.RateLimitResponse_OK {
				t.Fatalf("%v: %v %v, want OK", d, resp, err)
			}
		}
	}
	s.Update(&translate.Input{})
	for range 5 {
		if got := each(a); got != rlsv3.RateLimitResponse_OK {
			t.Fatalf("a removed limit still limits: %v", got)
		}
	}
}

func TestRefusals(t *testing.T) {
	ca := testpki.NewCA(t, "root")
	s := New(Options{TrustDomain: trustDomain})
	s.Update(catalogLimits())
	catalog := as(t, ca, spiffe.ID{TrustDomain: trustDomain, Namespace: "shop", Service: "catalog"})
	for _, tc := range []struct {
		name string
		ctx  context.Context
		req  *rlsv3.RateLimitRequest
		code codes.Code
		want string
	}{
		{"no peer", context.Background(), request(desc("destination", "catalog.shop", "limit", "all")), codes.Unauthenticated, "no peer"},
		{"another trust domain", as(t, ca, spiffe.ID{TrustDomain: "other.local", Namespace: "shop", Service: "catalog"}),
			request(desc("destination", "catalog.shop", "limit", "all")), codes.PermissionDenied, `trust domain "other.local"`},
		{"another service's limit", as(t, ca, spiffe.ID{TrustDomain: trustDomain, Namespace: "shop", Service: "web"}),
			request(desc("destination", "catalog.shop", "limit", "all")), codes.PermissionDenied, "may only count requests to its own service web.shop"},
		{"another domain", catalog, &rlsv3.RateLimitRequest{Domain: "envoy", Descriptors: []*commonratelimitv3.RateLimitDescriptor{desc("destination", "catalog.shop", "limit", "all")}},
			codes.InvalidArgument, `unknown domain "envoy"`},
		{"a descriptor of another shape", catalog, request(desc("limit", "all")), codes.InvalidArgument, "descriptors[0]: want the entries destination, limit and optionally source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.ShouldRateLimit(tc.ctx, tc.req)
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.code, tc.want)
			}
		})
	}
}

func TestWindowsExpire(t *testing.T) {
	var w windows
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 200 {
		w.add(string(rune('a'+i%26))+strings.Repeat("x", i), t0, time.Second, 1)
	}
	if w.len() != 200 {
		t.Fatalf("%d windows, want 200", w.len())
	}
	// Windows that ended go as their shard is next used after a sweep
	// period: use every shard once more, later.
	later := t0.Add(2 * sweepEvery)
	used := map[uint64]bool{}
	for i := 0; len(used) < len(w.shards); i++ {
		key := "new" + strings.Repeat("y", i)
		used[maphash.String(w.seed, key)%uint64(len(w.shards))] = true
		w.add(key, later, time.Second, 1)
	}
	for i := range w.shards {
		for k, win := range w.shards[i].m {
			if win.end.Before(later) {
				t.Errorf("window %q ended at %v but is still held", k, win.end)
			}
		}
	}
}

// TestWindowsBounded: a shard full of live windows counts no new key; one
// whose windows have ended makes room.
func TestWindowsBounded(t *testing.T) {
	var w windows
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w.add("seed", t0, time.Second, 1) // sets the seed
	var inShard0 []string
	for i := 0; len(inShard0) <= maxWindowsPerShard; i++ {
		if k := strconv.Itoa(i); maphash.String(w.seed, k)%uint64(len(w.shards)) == 0 {
			inShard0 = append(inShard0, k)
		}
	}
	for _, k := range inShard0[:maxWindowsPerShard] {
		w.shards[0].mu.Lock()
		full := len(w.shards[0].m) >= maxWindowsPerShard
		w.shards[0].mu.Unlock()
		if full {
			break
		}
		if _, _, ok := w.add(k, t0, time.Minute, 1); !ok {
			t.Fatalf("key %s not counted before the shard is full", k)
		}
	}
	last := inShard0[maxWindowsPerShard]
	if _, _, ok := w.add(last, t0.Add(time.Second), time.Minute, 1); ok {
		t.Fatal("a new key was counted in a full shard")
	}
	if _, _, ok := w.add(last, t0.Add(time.Minute), time.Minute, 1); !ok {
		t.Fatal("a new key was not counted once the shard's windows had ended")
	}
}
