package fault

import (
	"testing"
	"time"

	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/proxy/filter"
)

func TestPercentages(t *testing.T) {
	tests := []struct {
		name         string
		delay, abort *typev3.FractionalPercent
		wantD, wantA float64
	}{
		{"halves", &typev3.FractionalPercent{Numerator: 50}, &typev3.FractionalPercent{Numerator: 10}, .5, .1},
		{"ten thousand", &typev3.FractionalPercent{Numerator: 2500, Denominator: typev3.FractionalPercent_TEN_THOUSAND},
			&typev3.FractionalPercent{Numerator: 1, Denominator: typev3.FractionalPercent_MILLION}, .25, 0},
		{"absent is zero", nil, nil, 0, 0},
		{"all", &typev3.FractionalPercent{Numerator: 100}, &typev3.FractionalPercent{Numerator: 150}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile(&faultv3.HTTPFault{
				Delay: &commonfaultv3.FaultDelay{FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(time.Second)},
					Percentage: tt.delay},
				Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}, Percentage: tt.abort},
			})
			if err != nil {
				t.Fatal(err)
			}
			const n = 100_000
			var delays, aborts int
			for i := 0; i < n; i++ {
				d := c.Decide()
				if d.Delay == time.Second {
					delays++
				}
				if d.Reply != nil {
					aborts++
				}
			}
			// Five standard deviations of a binomial at 100,000 is under 0.8%.
			if f := float64(delays) / n; f < tt.wantD-.008 || f > tt.wantD+.008 {
				t.Errorf("delayed %.4f, want %.2f", f, tt.wantD)
			}
			if f := float64(aborts) / n; f < tt.wantA-.008 || f > tt.wantA+.008 {
				t.Errorf("aborted %.4f, want %.2f", f, tt.wantA)
			}
		})
	}
}

func TestRouteConfigReplacesFilterConfig(t *testing.T) {
	fac, ok := filter.ByConfig("envoy.extensions.filters.http.fault.v3.HTTPFault")
	if !ok {
		t.Fatal("not registered")
	}
	f, err := fac.New(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 500},
		Percentage: &typev3.FractionalPercent{Numerator: 100}}}, filter.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if d := f.DecodeHeaders(nil, nil, nil); d.Reply == nil || d.Reply.Status != 500 {
		t.Errorf("listener config not applied: %+v", d)
	}
	pr, err := fac.PerRoute(&faultv3.HTTPFault{})
	if err != nil {
		t.Fatal(err)
	}
	if d := f.DecodeHeaders(nil, nil, pr); d != filter.Continue {
		t.Errorf("an empty route config must replace the listener's: %+v", d)
	}
	g, err := fac.PerRoute(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 8},
		Percentage: &typev3.FractionalPercent{Numerator: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if d := f.DecodeHeaders(nil, nil, g); d.Reply == nil || d.Reply.Status != 200 || *d.Reply.GRPCStatus != 8 {
		t.Errorf("gRPC abort = %+v", d.Reply)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, bad := range []*faultv3.HTTPFault{
		{Delay: &commonfaultv3.FaultDelay{}},
		{Delay: &commonfaultv3.FaultDelay{FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(-time.Second)}}},
		{Abort: &faultv3.FaultAbort{}},
		{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 600}}},
		{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 500},
			Percentage: &typev3.FractionalPercent{Numerator: 1, Denominator: 7}}},
	} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	c, _ := Compile(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503},
		Percentage: &typev3.FractionalPercent{Numerator: 5}}})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Decide()
		}
	})
}
