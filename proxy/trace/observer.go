package trace

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/weftmesh/weft/proxy/observe"
)

// Sink takes finished spans; it must not block (Exporter drops and counts
// what it cannot queue).
type Sink interface {
	Enqueue(*tracepb.Span) bool
}

// Tag is an attribute set on every span of a listener (Envoy's literal
// custom_tags): the local workload's identity, as the control plane knows it.
type Tag struct{ Key, Value string }

// ObserverConfig configures the tracing of one connection manager.
type ObserverConfig struct {
	Direction observe.Direction
	// Sampling is the percentage, 0 to 100, of traces started here (with no
	// decision from the caller) that are recorded.
	Sampling float64
	Tags     []Tag
	Sink     Sink
}

// Observer records a span for each request of a listener. Requests the
// caller did not sample cost a header parse and no allocation.
type Observer struct {
	kind      tracepb.Span_SpanKind
	threshold uint64 // sample when rand.Uint64() < threshold
	always    bool
	tags      []Tag
	sink      Sink
}

// NewObserver returns the observer of cfg.
func NewObserver(cfg ObserverConfig) *Observer {
	o := &Observer{kind: tracepb.Span_SPAN_KIND_CLIENT, tags: cfg.Tags, sink: cfg.Sink}
	if cfg.Direction == observe.Inbound {
		o.kind = tracepb.Span_SPAN_KIND_SERVER
	}
	switch p := cfg.Sampling; {
	case p >= 100:
		o.always = true
	case p > 0:
		o.threshold = uint64(p / 100 * math.MaxUint64)
	}
	return o
}

// span is a sampled request's state between Start and Done.
type span struct {
	traceID    TraceID
	id, parent SpanID
	traceState string
}

var spans = sync.Pool{New: func() any { return new(span) }}

// Start reads the caller's context, decides, and rewrites the headers that
// go upstream so that the next hop's span is a child of this one.
func (o *Observer) Start(r *observe.Request) {
	h := r.Request.Header
	sc, formats, found := Extract(h)
	sampled := sc.Decision == Sample
	if sc.Decision == Undecided {
		sampled = o.sample()
	}
	if !sampled {
		if found && sc.Decision == Drop {
			// The headers carry the decision on as they are.
			return
		}
		// Tell the next hops this trace is not recorded, so that they do
		// not sample parts of it.
		t, parent := sc.TraceID, sc.SpanID
		if !found || t.IsZero() {
			t, parent, formats = newTraceID(), SpanID{}, orW3C(formats)
		}
		Inject(h, t, newSpanID(), parent, false, formats)
		return
	}
	s := spans.Get().(*span)
	*s = span{traceID: sc.TraceID, parent: sc.SpanID, id: newSpanID(), traceState: sc.TraceState}
	if s.traceID.IsZero() {
		s.traceID, s.parent = newTraceID(), SpanID{}
	}
	Inject(h, s.traceID, s.id, s.parent, true, orW3C(formats))
	r.Trace = s
}

func orW3C(f Format) Format {
	if f == 0 {
		return W3C
	}
	return f
}

func (o *Observer) sample() bool {
	return o.always || o.threshold > 0 && rand.Uint64() < o.threshold
}

// Done finishes the request's span, if it was sampled, and hands it to the sink.
func (o *Observer) Done(r *observe.Request) {
	s, ok := r.Trace.(*span)
	if !ok {
		return
	}
	r.Trace = nil
	out := o.record(r, s)
	*s = span{}
	spans.Put(s)
	o.sink.Enqueue(out)
}

// record builds the OTLP span of a finished request.
func (o *Observer) record(r *observe.Request, s *span) *tracepb.Span {
	out := &tracepb.Span{
		TraceId:           append([]byte(nil), s.traceID[:]...),
		SpanId:            append([]byte(nil), s.id[:]...),
		TraceState:        s.traceState,
		Kind:              o.kind,
		StartTimeUnixNano: uint64(r.Start.UnixNano()),
		EndTimeUnixNano:   uint64(r.Start.Add(r.Duration).UnixNano()),
	}
	if !s.parent.IsZero() {
		out.ParentSpanId = append([]byte(nil), s.parent[:]...)
	}
	req := r.Request
	out.Name = spanName(r)

	a := attributes{kv: make([]*commonpb.KeyValue, 0, len(o.tags)+24), tags: o.tags}
	for _, t := range o.tags {
		a.kv = append(a.kv, str(t.Key, t.Value))
	}
	a.peer("weft.source", r.Source)
	a.peer("weft.destination", r.Destination)
	a.str("weft.listener", r.Listener)
	a.str("weft.direction", string(r.Direction))
	a.str("weft.route", r.Route)
	a.str("weft.cluster", r.Cluster)
	a.str("weft.upstream.address", r.Upstream)
	a.str("http.request.method", req.Method)
	a.str("url.path", req.URL.Path)
	a.str("server.address", req.Host)
	a.str("network.protocol.version", protocolVersion(req))
	if r.Status != 0 {
		a.int("http.response.status_code", int64(r.Status))
	}
	if r.GRPCStatus != "" {
		if code, err := strconv.Atoi(r.GRPCStatus); err == nil {
			a.int("rpc.grpc.status_code", int64(code))
		}
	}
	a.kv = append(a.kv, &commonpb.KeyValue{Key: "weft.mtls",
		Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: r.MTLS}}})
	if names := r.Flags.Names(); len(names) > 0 {
		a.str("weft.response_flags", strings.Join(names, ","))
	}
	a.str("weft.error", r.Reason)
	if r.Attempts > 1 {
		a.int("weft.attempts", int64(r.Attempts))
	}
	out.Attributes = a.kv

	if r.Status >= 500 || r.GRPCStatus != "" && r.GRPCStatus != "0" {
		msg := r.Reason
		if msg == "" && r.GRPCStatus != "" && r.GRPCStatus != "0" {
			msg = "grpc-status " + r.GRPCStatus
		}
		out.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: msg}
	}
	return out
}

// spanName is "<method> <destination service>", the destination's host when
// the service is unknown: bounded, unlike the path.
func spanName(r *observe.Request) string {
	dest := r.Destination.Service
	if dest != "" && r.Destination.Namespace != "" {
		dest += "." + r.Destination.Namespace
	}
	if dest == "" {
		dest = r.Request.Host
	}
	if dest == "" {
		return r.Request.Method
	}
	return r.Request.Method + " " + dest
}

func protocolVersion(req *http.Request) string {
	switch req.ProtoMajor {
	case 2:
		return "2"
	case 1:
		if req.ProtoMinor == 0 {
			return "1.0"
		}
		return "1.1"
	}
	return ""
}

// attributes collects a span's attributes; a key a literal tag sets is
// not set again from the request.
type attributes struct {
	kv   []*commonpb.KeyValue
	tags []Tag
}

func (a *attributes) tagged(k string) bool {
	for _, t := range a.tags {
		if t.Key == k {
			return true
		}
	}
	return false
}

func (a *attributes) str(k, v string) {
	if v == "" || a.tagged(k) {
		return
	}
	a.kv = append(a.kv, str(k, v))
}

func (a *attributes) int(k string, v int64) {
	if a.tagged(k) {
		return
	}
	a.kv = append(a.kv, &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}})
}

func (a *attributes) peer(prefix string, p observe.Peer) {
	a.str(prefix+".service", p.Service)
	a.str(prefix+".namespace", p.Namespace)
	a.str(prefix+".version", p.Version)
	a.str(prefix+".spiffe_id", p.ID)
}

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

var _ observe.Observer = (*Observer)(nil)
