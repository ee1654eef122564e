package trace

import (
	"net/http"
	"testing"
)

const (
	tid  = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid  = "00f067aa0ba902b7"
	tp01 = "00-" + tid + "-" + sid + "-01"
)

func TestParseTraceparent(t *testing.T) {
	tests := []struct {
		in       string
		ok       bool
		decision Decision
	}{
		{tp01, true, Sample},
		{"00-" + tid + "-" + sid + "-00", true, Drop},
		{"00-" + tid + "-" + sid + "-03", true, Sample},
		{"01-" + tid + "-" + sid + "-01-future", true, Sample},
		{"01-" + tid + "-" + sid + "-01", true, Sample},
		{"01-" + tid + "-" + sid + "-01x", false, 0},
		{"00-" + tid + "-" + sid + "-01-extra", false, 0},
		{"ff-" + tid + "-" + sid + "-01", false, 0},
		{"00-00000000000000000000000000000000-" + sid + "-01", false, 0},
		{"00-" + tid + "-0000000000000000-01", false, 0},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-" + sid + "-01", false, 0},
		{"00-" + tid + "-" + sid + "-0", false, 0},
		{"", false, 0},
		{"00_" + tid + "-" + sid + "-01", false, 0},
	}
	for _, tt := range tests {
		sc, err := ParseTraceparent(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseTraceparent(%q): err %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && (sc.TraceID.String() != tid || sc.SpanID.String() != sid || sc.Decision != tt.decision) {
			t.Errorf("ParseTraceparent(%q) = %+v", tt.in, sc)
		}
	}
	sc, _ := ParseTraceparent(tp01)
	if got := FormatTraceparent(sc.TraceID, sc.SpanID, true); got != tp01 {
		t.Errorf("FormatTraceparent = %q, want %q", got, tp01)
	}
}

func TestParseB3(t *testing.T) {
	tests := []struct {
		in       string
		ok       bool
		trace    string
		decision Decision
	}{
		{tid + "-" + sid, true, tid, Undecided},
		{tid + "-" + sid + "-1", true, tid, Sample},
		{tid + "-" + sid + "-d", true, tid, Sample},
		{tid + "-" + sid + "-0-" + sid, true, tid, Drop},
		{"a3ce929d0e0e4736-" + sid + "-1", true, "0000000000000000a3ce929d0e0e4736", Sample},
		{"0", true, "", Drop},
		{"1", true, "", Sample},
		{"x", false, "", 0},
		{tid + "-" + sid + "-2", false, "", 0},
		{tid + "-" + sid + "-1-", false, "", 0},
		{tid + "-" + sid + "-1-0000000000000000", false, "", 0},
		{tid + "-0000000000000000", false, "", 0},
		{tid + "-" + sid[:15], false, "", 0},
		{tid[:31] + "-" + sid, false, "", 0},
	}
	for _, tt := range tests {
		sc, err := ParseB3(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseB3(%q): err %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		if tt.trace != "" && sc.TraceID.String() != tt.trace || sc.Decision != tt.decision {
			t.Errorf("ParseB3(%q) = %+v", tt.in, sc)
		}
	}
	sc, _ := ParseB3("a3ce929d0e0e4736-" + sid + "-1")
	if got, want := FormatB3(sc.TraceID, sc.SpanID, true, SpanID{}), "a3ce929d0e0e4736-"+sid+"-1"; got != want {
		t.Errorf("FormatB3 of a 64-bit trace = %q, want %q", got, want)
	}
}

func TestParseB3Multi(t *testing.T) {
	h := http.Header{}
	if _, found, _ := ParseB3Multi(h); found {
		t.Fatal("found in an empty header")
	}
	h.Set("x-b3-traceid", tid)
	h.Set("x-b3-spanid", sid)
	h.Set("x-b3-sampled", "true")
	sc, found, err := ParseB3Multi(h)
	if !found || err != nil || sc.TraceID.String() != tid || sc.SpanID.String() != sid || sc.Decision != Sample {
		t.Fatalf("ParseB3Multi = %+v %v %v", sc, found, err)
	}
	h.Set("x-b3-sampled", "yes")
	if _, _, err := ParseB3Multi(h); err == nil {
		t.Error("x-b3-sampled: yes was accepted")
	}
	h = http.Header{"X-B3-Flags": {"1"}}
	if sc, found, err := ParseB3Multi(h); !found || err != nil || sc.Decision != Sample {
		t.Errorf("debug flag alone: %+v %v %v", sc, found, err)
	}
	h = http.Header{"X-B3-Traceid": {tid}}
	if _, _, err := ParseB3Multi(h); err == nil {
		t.Error("a trace ID without a span ID was accepted")
	}
}

func TestExtractInject(t *testing.T) {
	var id SpanID
	decodeHex(id[:], "1111111111111111", false)
	tests := []struct {
		name    string
		in      http.Header
		formats Format
		want    http.Header
	}{
		{
			name:    "w3c",
			in:      http.Header{"Traceparent": {tp01}, "Tracestate": {"k=v"}},
			formats: W3C,
			want:    http.Header{"Traceparent": {"00-" + tid + "-1111111111111111-01"}, "Tracestate": {"k=v"}},
		},
		{
			name:    "b3 single",
			in:      http.Header{"B3": {tid + "-" + sid + "-1"}},
			formats: B3Single,
			want:    http.Header{"B3": {tid + "-1111111111111111-1-" + sid}},
		},
		{
			name:    "b3 multi",
			in:      http.Header{"X-B3-Traceid": {tid}, "X-B3-Spanid": {sid}, "X-B3-Sampled": {"1"}, "X-B3-Flags": {"1"}},
			formats: B3Multi,
			want: http.Header{"X-B3-Traceid": {tid}, "X-B3-Spanid": {"1111111111111111"},
				"X-B3-Parentspanid": {sid}, "X-B3-Sampled": {"1"}},
		},
		{
			name:    "w3c and b3",
			in:      http.Header{"Traceparent": {tp01}, "B3": {tid + "-" + sid}},
			formats: W3C | B3Single,
			want: http.Header{"Traceparent": {"00-" + tid + "-1111111111111111-01"},
				"B3": {tid + "-1111111111111111-1-" + sid}},
		},
		{
			name:    "invalid w3c, valid b3",
			in:      http.Header{"Traceparent": {"garbage"}, "B3": {tid + "-" + sid + "-1"}},
			formats: B3Single,
			want:    http.Header{"Traceparent": {"garbage"}, "B3": {tid + "-1111111111111111-1-" + sid}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, formats, ok := Extract(tt.in)
			if !ok || formats != tt.formats || sc.TraceID.String() != tid || sc.SpanID.String() != sid {
				t.Fatalf("Extract = %+v, %b, %v", sc, formats, ok)
			}
			Inject(tt.in, sc.TraceID, id, sc.SpanID, true, formats)
			if len(tt.in) != len(tt.want) {
				t.Fatalf("headers %v, want %v", tt.in, tt.want)
			}
			for k, v := range tt.want {
				if got := tt.in[k]; len(got) != 1 || got[0] != v[0] {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	if _, _, ok := Extract(http.Header{"Traceparent": {"bad"}}); ok {
		t.Error("Extract accepted a malformed traceparent")
	}
}
