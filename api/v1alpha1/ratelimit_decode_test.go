package v1alpha1_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/weftmesh/weft/api/v1alpha1"
)

// TestDecodeRateLimitExample decodes the example in testdata, which seeds
// the decode fuzzer too, with its defaults filled in.
func TestDecodeRateLimitExample(t *testing.T) {
	got := decodeFile(t, "ratelimit-catalog.yaml")
	want := []*v1.Object{{
		APIVersion: v1.APIVersion, Kind: "RateLimit", Metadata: meta("shop", "catalog"),
		Spec: &v1.RateLimitSpec{
			FailureMode: v1.FailureModeClosed,
			Timeout:     dur(50 * time.Millisecond),
			Limits: []v1.Limit{
				{
					Name: "search",
					Match: []v1.RouteMatch{
						{Path: &v1.PathMatch{Prefix: "/search"}, Method: "GET"},
						{Path: &v1.PathMatch{Regex: "/v[0-9]+/search"}},
					},
					PerSource: true,
					Local:     &v1.LocalLimit{Requests: 20, Unit: v1.UnitSecond, Burst: 40},
					Global:    &v1.GlobalLimit{Requests: 100, Unit: v1.UnitSecond},
				},
				{Name: "checkout", RouteRule: "checkout", Global: &v1.GlobalLimit{Requests: 600, Unit: v1.UnitMinute}},
				{Name: "everything-else", Local: &v1.LocalLimit{Requests: 1000, Unit: v1.UnitMinute, Burst: 1000}},
			},
		},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded objects (-want +got):\n%s", diff)
	}
}
