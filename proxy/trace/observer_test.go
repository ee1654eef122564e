package trace

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/weftmesh/weft/proxy/observe"
)

// spanList is a Sink that keeps what it is given.
type spanList struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (l *spanList) Enqueue(s *tracepb.Span) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.spans = append(l.spans, s)
	return true
}

func request(dir observe.Direction, h http.Header) *observe.Request {
	r := httptest.NewRequest("GET", "http://web.default:8080/items/1?secret=x", nil)
	for k, v := range h {
		r.Header[k] = v
	}
	return &observe.Request{Direction: dir, Listener: "inbound", Start: time.Unix(100, 0), Request: r}
}

func attrs(s *tracepb.Span) map[string]*commonpb.AnyValue {
	m := map[string]*commonpb.AnyValue{}
	for _, kv := range s.GetAttributes() {
		if _, dup := m[kv.GetKey()]; dup {
			panic("duplicate attribute " + kv.GetKey())
		}
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

func TestObserverChildOfCaller(t *testing.T) {
	sink := &spanList{}
	o := NewObserver(ObserverConfig{Direction: observe.Inbound, Sampling: 0, Sink: sink,
		Tags: []Tag{{Key: "weft.destination.service", Value: "web"}}})
	r := request(observe.Inbound, http.Header{"Traceparent": {tp01}, "Tracestate": {"a=b"}})
	o.Start(r)
	out, _ := ParseTraceparent(r.Request.Header.Get("traceparent"))
	if out.TraceID.String() != tid || out.SpanID.String() == sid || out.Decision != Sample {
		t.Fatalf("forwarded traceparent %q", r.Request.Header.Get("traceparent"))
	}
	r.Source = observe.Peer{ID: "spiffe://weft.local/ns/default/sa/a", Service: "a", Namespace: "default", Version: "v1"}
	r.Destination = observe.Peer{Service: "other"}
	r.Route, r.Cluster, r.Upstream, r.MTLS = "items", "inbound|web.default", "127.0.0.1:9000", true
	r.Status, r.Duration, r.Flags, r.Reason = 503, 20*time.Millisecond, observe.UpstreamConnectFailure, "upstream connect error"
	o.Done(r)
	if len(sink.spans) != 1 {
		t.Fatalf("%d spans", len(sink.spans))
	}
	s := sink.spans[0]
	if got := SpanID(s.SpanId); got != out.SpanID || string(s.ParentSpanId) != string(mustHex(sid)) || TraceID(s.TraceId).String() != tid {
		t.Errorf("ids: span %x parent %x trace %x", s.SpanId, s.ParentSpanId, s.TraceId)
	}
	if s.Kind != tracepb.Span_SPAN_KIND_SERVER || s.TraceState != "a=b" {
		t.Errorf("kind %v, tracestate %q", s.Kind, s.TraceState)
	}
	if s.EndTimeUnixNano-s.StartTimeUnixNano != uint64(20*time.Millisecond) {
		t.Errorf("duration %d", s.EndTimeUnixNano-s.StartTimeUnixNano)
	}
	a := attrs(s)
	for k, want := range map[string]string{
		"weft.destination.service": "web", // the tag wins over the peer
		"weft.source.service":      "a",
		"weft.source.spiffe_id":    "spiffe://weft.local/ns/default/sa/a",
		"weft.source.version":      "v1",
		"weft.route":               "items",
		"weft.cluster":             "inbound|web.default",
		"weft.upstream.address":    "127.0.0.1:9000",
		"http.request.method":      "GET",
		"url.path":                 "/items/1",
		"weft.response_flags":      "upstream_connect_failure",
	} {
		if got := a[k].GetStringValue(); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if a["http.response.status_code"].GetIntValue() != 503 || !a["weft.mtls"].GetBoolValue() {
		t.Errorf("status %v mtls %v", a["http.response.status_code"], a["weft.mtls"])
	}
	if s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("status %v", s.GetStatus())
	}
	if r.Trace != nil {
		t.Error("r.Trace kept after Done")
	}
}

func mustHex(s string) []byte {
	b := make([]byte, len(s)/2)
	if !decodeHex(b, s, false) {
		panic(s)
	}
	return b
}

func TestObserverSampling(t *testing.T) {
	sink := &spanList{}
	never := NewObserver(ObserverConfig{Direction: observe.Outbound, Sampling: 0, Sink: sink})
	always := NewObserver(ObserverConfig{Direction: observe.Outbound, Sampling: 100, Sink: sink})

	// A new trace not sampled here tells the next hops so, in W3C.
	r := request(observe.Outbound, nil)
	never.Start(r)
	never.Done(r)
	sc, err := ParseTraceparent(r.Request.Header.Get("traceparent"))
	if err != nil || sc.Decision != Drop || len(sink.spans) != 0 {
		t.Fatalf("unsampled new trace: %q, %d spans", r.Request.Header.Get("traceparent"), len(sink.spans))
	}

	// The caller's decision wins over the rate, both ways.
	r = request(observe.Outbound, http.Header{"Traceparent": {"00-" + tid + "-" + sid + "-00"}})
	always.Start(r)
	always.Done(r)
	if len(sink.spans) != 0 || r.Request.Header.Get("traceparent") != "00-"+tid+"-"+sid+"-00" {
		t.Fatalf("caller's drop: %d spans, %q", len(sink.spans), r.Request.Header.Get("traceparent"))
	}
	r = request(observe.Outbound, http.Header{"B3": {tid + "-" + sid + "-1"}})
	never.Start(r)
	never.Done(r)
	if len(sink.spans) != 1 || r.Request.Header.Get("traceparent") != "" {
		t.Fatalf("caller's sample: %d spans, traceparent %q", len(sink.spans), r.Request.Header.Get("traceparent"))
	}
	if sink.spans[0].Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("outbound kind %v", sink.spans[0].Kind)
	}

	// A new sampled trace is a root, propagated in W3C.
	r = request(observe.Outbound, nil)
	always.Start(r)
	always.Done(r)
	s := sink.spans[1]
	if len(s.ParentSpanId) != 0 {
		t.Errorf("root span has parent %x", s.ParentSpanId)
	}
	if sc, err := ParseTraceparent(r.Request.Header.Get("traceparent")); err != nil || SpanID(s.SpanId) != sc.SpanID || sc.Decision != Sample {
		t.Errorf("root traceparent %q", r.Request.Header.Get("traceparent"))
	}

	// About half of new traces at 50%.
	half := NewObserver(ObserverConfig{Direction: observe.Outbound, Sampling: 50, Sink: &spanList{}})
	n := 0
	for range 2000 {
		if half.sample() {
			n++
		}
	}
	if n < 800 || n > 1200 {
		t.Errorf("50%% sampled %d of 2000", n)
	}
}

func TestObserverGRPCError(t *testing.T) {
	sink := &spanList{}
	o := NewObserver(ObserverConfig{Direction: observe.Outbound, Sampling: 100, Sink: sink})
	r := request(observe.Outbound, nil)
	o.Start(r)
	r.Status, r.GRPCStatus = 200, "14"
	o.Done(r)
	s := sink.spans[0]
	if attrs(s)["rpc.grpc.status_code"].GetIntValue() != 14 || s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("grpc status: %v, %v", attrs(s)["rpc.grpc.status_code"], s.GetStatus())
	}
	r = request(observe.Outbound, nil)
	o.Start(r)
	r.Status, r.GRPCStatus = 200, "0"
	o.Done(r)
	if sink.spans[1].GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Error("grpc-status 0 is an error")
	}
}
