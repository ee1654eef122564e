package trace

import "net/http"

// Extract reads the caller's span context from h. formats is the set of
// formats that carried a valid context (or decision); when several did, W3C
// wins over b3, and b3 over x-b3-*. ok is false when none did.
func Extract(h http.Header) (sc SpanContext, formats Format, ok bool) {
	if v := h.Get(HeaderTraceparent); v != "" {
		if c, err := ParseTraceparent(v); err == nil {
			sc, formats, ok = c, W3C, true
			sc.TraceState = h.Get(HeaderTracestate)
		}
	}
	if v := h.Get(HeaderB3); v != "" {
		if c, err := ParseB3(v); err == nil {
			formats |= B3Single
			if !ok {
				sc, ok = c, true
			}
		}
	}
	if c, found, err := ParseB3Multi(h); found && err == nil {
		formats |= B3Multi
		if !ok {
			sc, ok = c, true
		}
	}
	return sc, formats, ok
}

// Inject writes, in each of formats, that span id of trace t (child of
// parent, zero for a root) is the caller of the next hop. The W3C
// tracestate is left as it came.
func Inject(h http.Header, t TraceID, id, parent SpanID, sampled bool, formats Format) {
	if formats&W3C != 0 {
		h.Set(HeaderTraceparent, FormatTraceparent(t, id, sampled))
	}
	if formats&B3Single != 0 {
		h.Set(HeaderB3, FormatB3(t, id, sampled, parent))
	}
	if formats&B3Multi != 0 {
		var buf [32]byte
		h.Set(HeaderB3TraceID, string(appendB3TraceID(buf[:0], t)))
		h.Set(HeaderB3SpanID, id.String())
		if parent.IsZero() {
			h.Del(HeaderB3ParentSpan)
		} else {
			h.Set(HeaderB3ParentSpan, parent.String())
		}
		if sampled {
			h.Set(HeaderB3Sampled, "1")
		} else {
			h.Set(HeaderB3Sampled, "0")
		}
		// Debug implies sampled, which x-b3-sampled now says.
		h.Del(HeaderB3Flags)
	}
}
