package trace

import (
	"net/http"
	"testing"
)

// Every parser meets the network: none may panic, and what one accepts
// must survive a round trip through its formatter.

func FuzzParseTraceparent(f *testing.F) {
	f.Add(tp01)
	f.Add("01-" + tid + "-" + sid + "-01-x")
	f.Add("ff-" + tid + "-" + sid + "-01")
	f.Fuzz(func(t *testing.T, v string) {
		sc, err := ParseTraceparent(v)
		if err != nil {
			return
		}
		out := FormatTraceparent(sc.TraceID, sc.SpanID, sc.Decision == Sample)
		again, err := ParseTraceparent(out)
		if err != nil || again.TraceID != sc.TraceID || again.SpanID != sc.SpanID || again.Decision != sc.Decision {
			t.Fatalf("%q -> %q -> %+v, %v", v, out, again, err)
		}
	})
}

func FuzzParseB3(f *testing.F) {
	f.Add(tid + "-" + sid + "-1-" + sid)
	f.Add("a3ce929d0e0e4736-" + sid)
	f.Add("d")
	f.Fuzz(func(t *testing.T, v string) {
		sc, err := ParseB3(v)
		if err != nil || sc.TraceID.IsZero() {
			return
		}
		out := FormatB3(sc.TraceID, sc.SpanID, sc.Decision == Sample, SpanID{})
		again, err := ParseB3(out)
		if err != nil || again.TraceID != sc.TraceID || again.SpanID != sc.SpanID {
			t.Fatalf("%q -> %q -> %+v, %v", v, out, again, err)
		}
	})
}

func FuzzParseB3Multi(f *testing.F) {
	f.Add(tid, sid, "1", "")
	f.Add("a3ce929d0e0e4736", sid, "false", "1")
	f.Add("", "", "0", "")
	f.Fuzz(func(t *testing.T, traceID, spanID, sampled, flags string) {
		h := http.Header{}
		for k, v := range map[string]string{HeaderB3TraceID: traceID, HeaderB3SpanID: spanID, HeaderB3Sampled: sampled, HeaderB3Flags: flags} {
			if v != "" {
				h.Set(k, v)
			}
		}
		sc, found, err := ParseB3Multi(h)
		if !found || err != nil || sc.TraceID.IsZero() {
			return
		}
		out := http.Header{}
		Inject(out, sc.TraceID, sc.SpanID, SpanID{}, sc.Decision == Sample, B3Multi)
		again, _, err := ParseB3Multi(out)
		if err != nil || again.TraceID != sc.TraceID || again.SpanID != sc.SpanID {
			t.Fatalf("%v -> %v -> %+v, %v", h, out, again, err)
		}
	})
}

func FuzzExtract(f *testing.F) {
	f.Add(tp01, "k=v", tid+"-"+sid+"-1", sid)
	f.Fuzz(func(t *testing.T, traceparent, tracestate, b3, spanID string) {
		h := http.Header{}
		h.Set(HeaderTraceparent, traceparent)
		h.Set(HeaderTracestate, tracestate)
		h.Set(HeaderB3, b3)
		h.Set(HeaderB3SpanID, spanID)
		sc, formats, ok := Extract(h)
		if ok != (formats != 0) {
			t.Fatalf("ok %v with formats %b", ok, formats)
		}
		if ok && !sc.TraceID.IsZero() {
			Inject(h, sc.TraceID, newSpanID(), sc.SpanID, true, formats)
			again, _, ok := Extract(h)
			if !ok || again.TraceID != sc.TraceID {
				t.Fatalf("after Inject: %+v %v", again, ok)
			}
		}
	})
}
