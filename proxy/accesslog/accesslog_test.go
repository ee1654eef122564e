package accesslog

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/proxy/observe"
)

func deniedRequest() *observe.Request {
	req := httptest.NewRequest("POST", "http://catalog.shop:8080/admin?x=1", nil)
	req.RemoteAddr = "127.10.0.2:40000"
	req.Header.Set("Authorization", "Bearer secret")
	req.Header.Set("X-Request-Id", "r-1")
	return &observe.Request{
		Direction: observe.Inbound, Start: time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC), Request: req,
		Source:      observe.Peer{ID: "spiffe://weft.local/ns/shop/sa/web", Service: "web", Namespace: "shop"},
		Destination: observe.Peer{ID: "spiffe://weft.local/ns/shop/sa/catalog", Service: "catalog", Namespace: "shop"},
		MTLS:        true, Route: "default", Status: 403, Flags: observe.Denied, Reason: "rbac_access_denied",
		ResponseBytes: 19, Duration: 2500 * time.Microsecond, Cluster: "inbound|catalog.shop",
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func jsonStruct(t *testing.T, fields map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func statusEQ(code uint32) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
		Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_EQ, Value: &corev3.RuntimeUInt32{DefaultValue: code, RuntimeKey: "k"}},
	}}}
}

func flagFilter(flags ...string) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: flags}}}
}

// denials is the filter the control plane sends by default.
func denials() *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{
		Filters: []*accesslogv3.AccessLogFilter{flagFilter("UAEX", "RL"), statusEQ(401), statusEQ(403)},
	}}}
}

func stdoutLog(t *testing.T, f *corev3.SubstitutionFormatString, filter *accesslogv3.AccessLogFilter) *accesslogv3.AccessLog {
	return &accesslogv3.AccessLog{Name: "envoy.access_loggers.stdout", Filter: filter,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(t, &streamv3.StdoutAccessLog{
			AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{LogFormat: f},
		})}}
}

// capture is a stdout whose lines the test reads after Close.
type capture struct{ strings.Builder }

func compileStdout(t *testing.T, logs ...*accesslogv3.AccessLog) ([]*Logger, *Sinks, *capture) {
	t.Helper()
	out := &capture{}
	sinks := NewSinks(nil, out)
	loggers, err := Compile(logs, sinks, "access_log")
	if err != nil {
		t.Fatal(err)
	}
	return loggers, sinks, out
}

func TestJSONLineOfADenial(t *testing.T) {
	format := &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: jsonStruct(t, map[string]any{
		"time": "%START_TIME%", "direction": "inbound", "source": "%DOWNSTREAM_PEER_URI_SAN%",
		"destination": "%DOWNSTREAM_LOCAL_URI_SAN%", "method": "%REQ(:METHOD)%", "authority": "%REQ(:AUTHORITY)%",
		"path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "status": "%RESPONSE_CODE%", "grpc_status": "%GRPC_STATUS_NUMBER%",
		"flags": "%RESPONSE_FLAGS%", "details": "%RESPONSE_CODE_DETAILS%", "bytes_sent": "%BYTES_SENT%",
		"duration_ms": "%DURATION%", "request_id": "%REQ(X-REQUEST-ID)%", "auth": "%REQ(AUTHORIZATION)%",
		"tls_version": "%DOWNSTREAM_TLS_VERSION%", "upstream_tls": "%UPSTREAM_TLS_VERSION%",
		"summary": "%REQ(:METHOD)% %RESPONSE_CODE% %UPSTREAM_HOST%", "sampled": true, "version": 2,
	})}}
	loggers, sinks, out := compileStdout(t, stdoutLog(t, format, denials()))
	obs := Observer(loggers)
	obs.Start(deniedRequest())
	obs.Done(deniedRequest())
	ok := deniedRequest()
	ok.Status, ok.Flags = 200, 0
	obs.Done(ok) // not a denial: not logged
	sinks.Close()
	want := `{"auth":"<redacted>","authority":"catalog.shop:8080","bytes_sent":19,"destination":"spiffe://weft.local/ns/shop/sa/catalog",` +
		`"details":"rbac_access_denied","direction":"inbound","duration_ms":2,"flags":"denied","grpc_status":null,"method":"POST",` +
		`"path":"/admin?x=1","request_id":"r-1","sampled":true,"source":"spiffe://weft.local/ns/shop/sa/web","status":403,` +
		`"summary":"POST 403 -","time":"2030-01-02T03:04:05.000006Z","tls_version":"TLSv1.3","upstream_tls":null,"version":2}` + "\n"
	if out.String() != want {
		t.Fatalf("line\n got %s\nwant %s", out.String(), want)
	}
}

func TestFilters(t *testing.T) {
	rec := func(status int, flags observe.Flags, d time.Duration) *record {
		r := deniedRequest()
		r.Status, r.Flags, r.Duration = status, flags, d
		return &record{req: r}
	}
	ge := func(ms uint32) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_DurationFilter{DurationFilter: &accesslogv3.DurationFilter{
			Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_GE, Value: &corev3.RuntimeUInt32{DefaultValue: ms, RuntimeKey: "k"}},
		}}}
	}
	and := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{
		Filters: []*accesslogv3.AccessLogFilter{statusEQ(200), ge(100)},
	}}}
	cases := []struct {
		name   string
		filter *accesslogv3.AccessLogFilter
		rec    *record
		want   bool
	}{
		{"denied", denials(), rec(403, observe.Denied, 0), true},
		{"jwt", denials(), rec(401, observe.Unauthenticated, 0), true},
		{"rate limited", denials(), rec(429, observe.RateLimited, 0), true},
		{"ok", denials(), rec(200, 0, 0), false},
		{"upstream 503", denials(), rec(503, observe.UpstreamReset, 0), false},
		{"tcp denied", denials(), &record{conn: &observe.Conn{Denied: true}}, true},
		{"tcp closed", denials(), &record{conn: &observe.Conn{}}, false},
		{"any flag", flagFilter(), rec(200, observe.Retried, 0), true},
		{"no flag", flagFilter(), rec(200, 0, 0), false},
		{"slow 200", and, rec(200, 0, 150*time.Millisecond), true},
		{"fast 200", and, rec(200, 0, 50*time.Millisecond), false},
	}
	for _, c := range cases {
		f, err := compileFilter(c.filter, "filter")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := f(c.rec); got != c.want {
			t.Errorf("%s: kept %v, want %v", c.name, got, c.want)
		}
	}
}

func TestTCPTextLineToFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	text := &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
		Specifier: &corev3.DataSource_InlineString{InlineString: "[%START_TIME%] %RESPONSE_FLAGS% %DOWNSTREAM_PEER_URI_SAN% %UPSTREAM_CLUSTER% %BYTES_RECEIVED% %BYTES_SENT% %CONNECTION_TERMINATION_DETAILS% 100%% %REQ(:METHOD)%\n"},
	}}}
	log := &accesslogv3.AccessLog{Name: "envoy.access_loggers.file", Filter: flagFilter("UAEX"),
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(t, &filev3.FileAccessLog{
			Path: path, AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: text},
		})}}
	sinks := NewSinks(prometheus.NewRegistry(), io.Discard)
	loggers, err := Compile([]*accesslogv3.AccessLog{log}, sinks, "access_log")
	if err != nil {
		t.Fatal(err)
	}
	obs := ConnObserver(loggers)
	c := &observe.Conn{Direction: observe.Inbound, Start: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		Source: observe.Peer{ID: "spiffe://weft.local/ns/shop/sa/web"}, Cluster: "inbound|db.shop", Sent: 10, Received: 20,
		Denied: true, Reason: "rbac_access_denied_matched_policy[none]"}
	obs.ConnStart(c)
	obs.ConnDone(c)
	obs.ConnDone(&observe.Conn{}) // not denied
	sinks.Close()
	obs.ConnDone(c) // after Close: dropped, no panic
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "[2030-01-02T03:04:05Z] denied spiffe://weft.local/ns/shop/sa/web inbound|db.shop 10 20 rbac_access_denied_matched_policy[none] 100% -\n"
	if string(b) != want {
		t.Fatalf("file\n got %q\nwant %q", b, want)
	}
}

// blocked is a destination that never takes a line.
type blocked struct{ release chan struct{} }

func (b blocked) Write(p []byte) (int, error) { <-b.release; return len(p), nil }

func TestFullQueueDropsAndCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	w := blocked{release: make(chan struct{})}
	sinks := NewSinks(reg, w)
	loggers, err := Compile([]*accesslogv3.AccessLog{stdoutLog(t, nil, nil)}, sinks, "access_log")
	if err != nil {
		t.Fatal(err)
	}
	obs := Observer(loggers)
	start := time.Now()
	// The writer takes lines off the queue into its 64 KiB buffer until a
	// write to the destination blocks: fewer than 64Ki/100+2 lines of at
	// least 100 bytes, however the goroutines are scheduled. The queue
	// takes QueueLines more; the rest must be dropped.
	const extra = 1000
	n := QueueLines + extra
	for range n {
		obs.Done(deniedRequest())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("logging %d lines to a stuck destination took %s", n, d)
	}
	close(w.release)
	sinks.Close()
	var dropped, queued dto.Metric
	if err := sinks.dropped.WithLabelValues(Stdout).Write(&dropped); err != nil {
		t.Fatal(err)
	}
	if err := sinks.written.WithLabelValues(Stdout).Write(&queued); err != nil {
		t.Fatal(err)
	}
	d, q := dropped.GetCounter().GetValue(), queued.GetCounter().GetValue()
	if minDropped := float64(extra - (64<<10)/100 - 2); d < minDropped || d > extra || d+q != float64(n) {
		t.Fatalf("dropped %v and queued %v of %d lines; want %v to %d dropped, the rest queued", d, q, n, minDropped, extra)
	}
	if l := len(loggers[0].format.appendLine(nil, &record{req: deniedRequest()})); l < 100 {
		t.Fatalf("a line is %d bytes; the bounds above assume at least 100", l)
	}
}

func TestCompileErrors(t *testing.T) {
	text := func(s string) *corev3.SubstitutionFormatString {
		return &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: s}}
	}
	nested := &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: jsonStruct(t, map[string]any{"a": map[string]any{"b": "c"}})}}
	cases := []struct {
		log  *accesslogv3.AccessLog
		want string
	}{
		{stdoutLog(t, text("%NOPE%"), nil), "access_log[0].typed_config.log_format.text_format: command operator %NOPE% is not supported"},
		{stdoutLog(t, text("%REQ%"), nil), "needs an argument"},
		{stdoutLog(t, text("%DURATION(x)%"), nil), "takes no argument"},
		{stdoutLog(t, text("%DURATION"), nil), "unterminated command operator"},
		{stdoutLog(t, text("%DURATION:x%"), nil), "is not a :length"},
		{stdoutLog(t, text("%RESP(:path)%"), nil), ":path is not a supported pseudo-header"},
		{stdoutLog(t, nested, nil), `json_format["a"]: only strings, numbers and booleans are supported`},
		{stdoutLog(t, nil, flagFilter("XX")), `access_log[0].filter.response_flag_filter.flags[0]: response flag "XX" is not supported`},
		{&accesslogv3.AccessLog{Name: "x", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(t, &corev3.Address{})}}, "is not a supported access logger"},
	}
	for _, c := range cases {
		_, err := Compile([]*accesslogv3.AccessLog{c.log}, NewSinks(nil, io.Discard), "access_log")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one containing %q", err, c.want)
		}
	}
}

func TestTemplateLength(t *testing.T) {
	tm, err := parseTemplate("%REQ(USER-AGENT):3%|%REQ(X-MISSING?X-REQUEST-ID)%")
	if err != nil {
		t.Fatal(err)
	}
	r := deniedRequest()
	r.Request.Header.Set("User-Agent", "curl/8")
	if got := string(tm.appendText(nil, &record{req: r})); got != "cur|r-1" {
		t.Fatalf("got %q", got)
	}
	_ = http.MethodGet
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{defaultText, "%REQ(:METHOD)%", "%%", "%START_TIME%x%DURATION:3%", "%REQ(a?b):10%", "%RESP((x)%", "%"} {
		f.Add(s)
	}
	r := &record{req: deniedRequest()}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := parseTemplate(s)
		if err != nil {
			return
		}
		tm.appendText(nil, r)
		tm.appendText(nil, &record{conn: &observe.Conn{}})
	})
}
