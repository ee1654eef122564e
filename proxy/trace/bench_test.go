package trace

import (
	"net/http"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/weftmesh/weft/proxy/observe"
)

type discard struct{}

func (discard) Enqueue(*tracepb.Span) bool { return true }

// An unsampled request from a caller that decided: no allocation.
func BenchmarkObserverNotSampled(b *testing.B) {
	o := NewObserver(ObserverConfig{Direction: observe.Inbound, Sampling: 0, Sink: discard{}})
	r := request(observe.Inbound, http.Header{"Traceparent": {"00-" + tid + "-" + sid + "-00"}})
	b.ReportAllocs()
	for b.Loop() {
		o.Start(r)
		o.Done(r)
	}
}

// A new trace not sampled here: one traceparent written for the next hops.
func BenchmarkObserverNewNotSampled(b *testing.B) {
	o := NewObserver(ObserverConfig{Direction: observe.Outbound, Sampling: 0, Sink: discard{}})
	r := request(observe.Outbound, nil)
	b.ReportAllocs()
	for b.Loop() {
		delete(r.Request.Header, HeaderTraceparent)
		o.Start(r)
		o.Done(r)
	}
}

func BenchmarkObserverSampled(b *testing.B) {
	o := NewObserver(ObserverConfig{Direction: observe.Inbound, Sampling: 100, Sink: discard{}})
	r := request(observe.Inbound, http.Header{"Traceparent": {tp01}})
	r.Status = 200
	b.ReportAllocs()
	for b.Loop() {
		r.Request.Header.Set(HeaderTraceparent, tp01)
		o.Start(r)
		o.Done(r)
	}
}

func BenchmarkParseTraceparent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTraceparent(tp01); err != nil {
			b.Fatal(err)
		}
	}
}
