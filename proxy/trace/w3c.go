package trace

import "errors"

// W3C Trace Context header names.
const (
	HeaderTraceparent = "Traceparent"
	HeaderTracestate  = "Tracestate"
)

var errTraceparent = errors.New("trace: malformed traceparent")

// traceparentLen is the length of a version 00 traceparent.
const traceparentLen = 55

// ParseTraceparent parses a W3C traceparent header value:
// version-traceid-parentid-flags in lowercase hex. A version above 00 is
// read as 00 when its first four fields are well formed, as the
// specification asks; ff is invalid.
func ParseTraceparent(v string) (SpanContext, error) {
	var sc SpanContext
	if len(v) < traceparentLen || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return sc, errTraceparent
	}
	var version [1]byte
	if !decodeHex(version[:], v[:2], false) || version[0] == 0xff {
		return sc, errTraceparent
	}
	if version[0] == 0 && len(v) != traceparentLen {
		return sc, errTraceparent
	}
	if len(v) > traceparentLen && v[traceparentLen] != '-' {
		return sc, errTraceparent
	}
	var flags [1]byte
	if !decodeHex(sc.TraceID[:], v[3:35], false) || !decodeHex(sc.SpanID[:], v[36:52], false) ||
		!decodeHex(flags[:], v[53:55], false) {
		return sc, errTraceparent
	}
	if sc.TraceID.IsZero() || sc.SpanID.IsZero() {
		return sc, errTraceparent
	}
	sc.Decision = Drop
	if flags[0]&1 != 0 {
		sc.Decision = Sample
	}
	return sc, nil
}

// FormatTraceparent returns the version 00 traceparent of span id in
// trace t; sampled sets the sampled flag.
func FormatTraceparent(t TraceID, id SpanID, sampled bool) string {
	var buf [traceparentLen]byte
	b := append(buf[:0], "00-"...)
	b = appendHex(b, t[:])
	b = append(b, '-')
	b = appendHex(b, id[:])
	if sampled {
		b = append(b, "-01"...)
	} else {
		b = append(b, "-00"...)
	}
	return string(b)
}
