package route

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func weighted(weights map[string]uint32) *routev3.Route {
	wc := &routev3.WeightedCluster{}
	for _, name := range []string{"a", "b", "c"} {
		if w, ok := weights[name]; ok {
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(w)})
		}
	}
	return &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}}},
	}
}

func TestWeightedPick(t *testing.T) {
	tab := compile(t, &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
		vhost("vh", []string{"*"}, weighted(map[string]uint32{"a": 70, "b": 20, "c": 10}))}})
	r := tab.Match("x", "/")
	const n = 100_000
	got := map[string]int{}
	for i := 0; i < n; i++ {
		name, target := r.Pick()
		if name != target {
			t.Fatalf("target %q for cluster %q", target, name)
		}
		got[name]++
	}
	// Five standard deviations of a binomial at these shares is under 1%.
	for name, share := range map[string]float64{"a": .7, "b": .2, "c": .1} {
		if f := float64(got[name]) / n; f < share-.01 || f > share+.01 {
			t.Errorf("%s got %.3f of picks, want %.2f", name, f, share)
		}
	}
}

func TestWeightedZeroWeightNeverPicked(t *testing.T) {
	tab := compile(t, &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
		vhost("vh", []string{"*"}, weighted(map[string]uint32{"a": 0, "b": 1}))}})
	r := tab.Match("x", "/")
	for i := 0; i < 1000; i++ {
		if name, _ := r.Pick(); name != "b" {
			t.Fatalf("picked %q", name)
		}
	}
}

func TestRetryPolicyCompile(t *testing.T) {
	p, err := compileRetry(&routev3.RetryPolicy{RetryOn: "5xx, unavailable"}, "rp")
	if err != nil {
		t.Fatal(err)
	}
	if p.NumRetries != 1 || p.BaseBackOff != 25*time.Millisecond || p.MaxBackOff != 250*time.Millisecond {
		t.Errorf("defaults = %+v", p)
	}
	if !p.RetriableStatus(503, "") || p.RetriableStatus(404, "") || !p.RetriableStatus(200, "14") || p.RetriableStatus(200, "13") {
		t.Error("status conditions wrong")
	}
	if !p.RetriableFailure(false) {
		t.Error("5xx must retry resets")
	}
	cf, _ := compileRetry(&routev3.RetryPolicy{RetryOn: "connect-failure"}, "rp")
	if cf.RetriableFailure(false) || !cf.RetriableFailure(true) {
		t.Error("connect-failure conditions wrong")
	}
	for _, bad := range []*routev3.RetryPolicy{
		{RetryOn: "5xx,bogus"},
		{RetryBackOff: &routev3.RetryPolicy_RetryBackOff{}},
		{RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Second), MaxInterval: durationpb.New(time.Millisecond)}},
		{RetriableStatusCodes: []uint32{42}},
	} {
		if _, err := compileRetry(bad, "rp"); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestBackOffIsJitteredAndCapped(t *testing.T) {
	p := &RetryPolicy{BaseBackOff: 10 * time.Millisecond, MaxBackOff: 50 * time.Millisecond}
	for n, ceil := range []time.Duration{10, 20, 40, 50, 50, 50} {
		ceil *= time.Millisecond
		var longest time.Duration
		for i := 0; i < 2000; i++ {
			d := p.BackOff(n)
			if d < 0 || d >= ceil {
				t.Fatalf("retry %d: back-off %v outside [0, %v)", n, d, ceil)
			}
			longest = max(longest, d)
		}
		if longest < ceil*3/4 {
			t.Errorf("retry %d: longest back-off %v of %v: not spread", n, longest, ceil)
		}
	}
}

func TestHeaderEditsApply(t *testing.T) {
	add := func(k, v string, a corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: a}
	}
	e, err := compileHeaderEdits([]*corev3.HeaderValueOption{
		add("x-append", "b", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
		add("x-new", "n", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
		add("x-over", "o", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
		add("x-absent", "1", corev3.HeaderValueOption_ADD_IF_ABSENT),
		add("x-keep", "2", corev3.HeaderValueOption_ADD_IF_ABSENT),
		add("x-only", "3", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS),
		add("x-empty", "", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
	}, []string{"x-gone"}, "p", "add", "remove")
	if err != nil {
		t.Fatal(err)
	}
	h := map[string][]string{"X-Append": {"a"}, "X-Over": {"1", "2"}, "X-Keep": {"k"}, "X-Gone": {"g"}}
	e.Apply(h)
	want := map[string]string{"X-Append": "a,b", "X-New": "n", "X-Over": "o", "X-Absent": "1", "X-Keep": "k"}
	for k, v := range want {
		if got := strings.Join(h[k], ","); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if _, ok := h["X-Gone"]; ok {
		t.Error("x-gone not removed")
	}
	if _, ok := h["X-Empty"]; ok {
		t.Error("a header with an empty value was added")
	}
	if _, ok := h["X-Only"]; ok {
		t.Error("OVERWRITE_IF_EXISTS added an absent header")
	}
}

func TestHashPolicyCompile(t *testing.T) {
	_, err := compileHashPolicy(&routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
		ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{}}}, "h")
	if err == nil {
		t.Error("connection_properties without source_ip accepted")
	}
	hp, err := compileHashPolicy(&routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
		Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user-id"}}}, "h")
	if err != nil || hp.Name != "X-User-Id" {
		t.Errorf("header policy = %+v, %v", hp, err)
	}
}

func BenchmarkWeightedPick(b *testing.B) {
	tab := compile(b, &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
		vhost("vh", []string{"*"}, weighted(map[string]uint32{"a": 70, "b": 20, "c": 10}))}})
	r := tab.Match("x", "/")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Pick()
		}
	})
}
