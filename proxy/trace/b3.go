package trace

import (
	"errors"
	"net/http"
)

// B3 header names (https://github.com/openzipkin/b3-propagation).
const (
	HeaderB3           = "B3"
	HeaderB3TraceID    = "X-B3-Traceid"
	HeaderB3SpanID     = "X-B3-Spanid"
	HeaderB3ParentSpan = "X-B3-Parentspanid"
	HeaderB3Sampled    = "X-B3-Sampled"
	HeaderB3Flags      = "X-B3-Flags"
)

var (
	errB3      = errors.New("trace: malformed b3 header")
	errB3Multi = errors.New("trace: malformed x-b3 headers")
)

// ParseB3 parses the single b3 header: traceid-spanid[-sampling[-parentspanid]],
// or a sampling decision alone ("0", "1" or "d"). The trace ID is 16 or 32
// hex digits (a 64-bit ID is widened with leading zeros).
func ParseB3(v string) (SpanContext, error) {
	var sc SpanContext
	if len(v) == 1 {
		d, ok := b3Decision(v)
		if !ok {
			return sc, errB3
		}
		sc.Decision = d
		return sc, nil
	}
	var tid string
	switch {
	case len(v) >= 33 && v[32] == '-':
		tid, v = v[:32], v[33:]
	case len(v) >= 17 && v[16] == '-':
		tid, v = v[:16], v[17:]
	default:
		return sc, errB3
	}
	if !parseB3TraceID(&sc.TraceID, tid) {
		return sc, errB3
	}
	if len(v) < 16 || !decodeHex(sc.SpanID[:], v[:16], false) || sc.SpanID.IsZero() {
		return sc, errB3
	}
	v = v[16:]
	if v == "" {
		return sc, nil
	}
	if len(v) < 2 || v[0] != '-' {
		return sc, errB3
	}
	d, ok := b3Decision(v[1:2])
	if !ok {
		return sc, errB3
	}
	sc.Decision = d
	v = v[2:]
	if v == "" {
		return sc, nil
	}
	var parent SpanID
	if len(v) != 17 || v[0] != '-' || !decodeHex(parent[:], v[1:], false) || parent.IsZero() {
		return sc, errB3
	}
	return sc, nil
}

func b3Decision(s string) (Decision, bool) {
	switch s {
	case "1", "d":
		return Sample, true
	case "0":
		return Drop, true
	}
	return Undecided, false
}

func parseB3TraceID(t *TraceID, s string) bool {
	var ok bool
	if len(s) == 16 {
		*t = TraceID{}
		ok = decodeHex(t[8:], s, true)
	} else {
		ok = decodeHex(t[:], s, true)
	}
	return ok && !t.IsZero()
}

// ParseB3Multi parses the x-b3-* headers. found is false when none of
// x-b3-traceid, x-b3-spanid and x-b3-sampled is present. Only a sampling
// decision (x-b3-sampled, or x-b3-flags: 1 for debug) may come without IDs.
func ParseB3Multi(h http.Header) (sc SpanContext, found bool, err error) {
	tid, sid := h.Get(HeaderB3TraceID), h.Get(HeaderB3SpanID)
	sampled, flags := h.Get(HeaderB3Sampled), h.Get(HeaderB3Flags)
	if tid == "" && sid == "" && sampled == "" && flags == "" {
		return sc, false, nil
	}
	switch sampled {
	case "":
	case "1", "true":
		sc.Decision = Sample
	case "0", "false":
		sc.Decision = Drop
	default:
		return SpanContext{}, true, errB3Multi
	}
	if flags == "1" {
		sc.Decision = Sample
	}
	if tid == "" && sid == "" {
		return sc, true, nil
	}
	if !parseB3TraceID(&sc.TraceID, tid) {
		return SpanContext{}, true, errB3Multi
	}
	if !decodeHex(sc.SpanID[:], sid, true) || sc.SpanID.IsZero() {
		return SpanContext{}, true, errB3Multi
	}
	return sc, true, nil
}

// FormatB3 returns the single b3 header of span id in trace t whose parent
// is parent (zero for none).
func FormatB3(t TraceID, id SpanID, sampled bool, parent SpanID) string {
	var buf [32 + 1 + 16 + 2 + 17]byte
	b := appendB3TraceID(buf[:0], t)
	b = append(b, '-')
	b = appendHex(b, id[:])
	if sampled {
		b = append(b, "-1"...)
	} else {
		b = append(b, "-0"...)
	}
	if !parent.IsZero() {
		b = append(b, '-')
		b = appendHex(b, parent[:])
	}
	return string(b)
}

// appendB3TraceID writes a 64-bit trace ID in the 16 digits it came in.
func appendB3TraceID(b []byte, t TraceID) []byte {
	if [8]byte(t[:8]) == [8]byte{} {
		return appendHex(b, t[8:])
	}
	return appendHex(b, t[:])
}
