// Package trace is the proxy's distributed tracing: it reads W3C Trace
// Context and B3 propagation headers, records a span for each request a
// listener handles (SERVER inbound, CLIENT outbound), rewrites the headers
// going upstream so the next hop's spans are children of its own, and
// exports the spans over OTLP (gRPC or HTTP with protobuf) in batches.
package trace

import (
	"encoding/hex"
	"math/rand/v2"
)

// TraceID identifies a trace; all zero is invalid.
type TraceID [16]byte

// SpanID identifies a span within a trace; all zero is invalid (none).
type SpanID [8]byte

// IsZero says the ID is unset.
func (t TraceID) IsZero() bool { return t == TraceID{} }

// IsZero says the ID is unset.
func (s SpanID) IsZero() bool { return s == SpanID{} }

// String is the lowercase hex form used by every propagation format.
func (t TraceID) String() string { return hex.EncodeToString(t[:]) }

// String is the lowercase hex form used by every propagation format.
func (s SpanID) String() string { return hex.EncodeToString(s[:]) }

// Decision is a sampling decision carried by the propagation headers.
type Decision uint8

const (
	// Undecided: the caller left the decision to this hop.
	Undecided Decision = iota
	// Sample: the caller records the trace; so does this hop.
	Sample
	// Drop: the caller does not record the trace; neither does this hop.
	Drop
)

// SpanContext is what crosses a hop in the propagation headers.
type SpanContext struct {
	TraceID TraceID
	// SpanID is the caller's span: the parent of this hop's span. Zero
	// when a header carried only a sampling decision (b3: 0).
	SpanID   SpanID
	Decision Decision
	// TraceState is the W3C tracestate, passed on unchanged.
	TraceState string
}

// Format is a set of propagation formats.
type Format uint8

const (
	// W3C is traceparent and tracestate (https://www.w3.org/TR/trace-context/).
	W3C Format = 1 << iota
	// B3Single is the single b3 header.
	B3Single
	// B3Multi is the x-b3-traceid, x-b3-spanid, x-b3-parentspanid,
	// x-b3-sampled and x-b3-flags headers.
	B3Multi
)

// newTraceID returns a random, non-zero trace ID. math/rand/v2's global
// generator is seeded from the OS, per process, and takes no lock.
func newTraceID() TraceID {
	var t TraceID
	for t.IsZero() {
		putUint64(t[:8], rand.Uint64())
		putUint64(t[8:], rand.Uint64())
	}
	return t
}

// newSpanID returns a random, non-zero span ID.
func newSpanID() SpanID {
	var s SpanID
	for s.IsZero() {
		putUint64(s[:], rand.Uint64())
	}
	return s
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

const hexDigits = "0123456789abcdef"

// appendHex appends the lowercase hex of b.
func appendHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// decodeHex decodes lowercase (or, if upper is set, any case) hex of
// exactly len(dst)*2 characters.
func decodeHex(dst []byte, s string, upper bool) bool {
	if len(s) != len(dst)*2 {
		return false
	}
	for i := range dst {
		hi, ok1 := fromHex(s[2*i], upper)
		lo, ok2 := fromHex(s[2*i+1], upper)
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte, upper bool) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case upper && 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
