package meshstate_test

import (
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/translate"
)

func rateLimit(namespace, svc string, requests uint32) *v1alpha1.Object {
	return &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.RateLimitKind.Name,
		Metadata: v1alpha1.ObjectMeta{Namespace: namespace, Name: svc},
		Spec: &v1alpha1.RateLimitSpec{Limits: []v1alpha1.Limit{{
			Name: "all", Local: &v1alpha1.LocalLimit{Requests: requests, Unit: v1alpha1.UnitSecond},
		}}},
	}
}

// TestWatcherReadsRateLimits: a RateLimit reaches the Input under the
// service it is named after, defaulted, follows its changes and leaves
// when deleted.
func TestWatcherReadsRateLimits(t *testing.T) {
	st := storetest.New(t)
	ctx := testContext(t)
	w := startWatcher(t, st, nil)
	catalog := translate.ServiceKey{Namespace: "shop", Name: "catalog"}
	w.waitFor(t, "the initial load", func(*translate.Input) bool { return true })

	if _, err := st.Apply(ctx, []*v1alpha1.Object{service("shop", "catalog", 8080), rateLimit("shop", "catalog", 10)}); err != nil {
		t.Fatal(err)
	}
	in := w.waitFor(t, "the RateLimit", func(in *translate.Input) bool { return in.RateLimits[catalog] != nil })
	rl := in.RateLimits[catalog]
	if l := rl.Limits[0].Local; l.Burst != 10 || rl.FailureMode != v1alpha1.FailureModeOpen || rl.Timeout == nil {
		t.Errorf("RateLimit %+v (local %+v), want burst, failure mode and timeout defaulted", rl, l)
	}
	if _, err := st.Apply(ctx, []*v1alpha1.Object{rateLimit("shop", "catalog", 20)}); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "the changed RateLimit", func(in *translate.Input) bool {
		return in.RateLimits[catalog] != nil && in.RateLimits[catalog].Limits[0].Local.Requests == 20
	})
	if err := st.Delete(ctx, v1alpha1.RateLimitKind.Name, "shop", "catalog"); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "no RateLimit", func(in *translate.Input) bool { return len(in.RateLimits) == 0 })
	w.checkImmutable(t)
}
