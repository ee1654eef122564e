package accesslog

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/xdswire"
)

// Logger is one compiled access_log entry: which records it keeps, how it
// formats them and where the lines go.
type Logger struct {
	keep   filter
	format format
	sink   *sink
}

// Compile builds the loggers of a connection manager's or TCP proxy's
// access_log; path locates the field in errors. Lines go to sinks.
func Compile(logs []*accesslogv3.AccessLog, sinks *Sinks, path string) ([]*Logger, error) {
	var out []*Logger
	for i, l := range logs {
		p := path + "[" + strconv.Itoa(i) + "]"
		lg, err := compileOne(l, sinks, p)
		if err != nil {
			return nil, err
		}
		out = append(out, lg)
	}
	return out, nil
}

func compileOne(l *accesslogv3.AccessLog, sinks *Sinks, path string) (*Logger, error) {
	any := l.GetTypedConfig()
	if any == nil {
		return nil, fmt.Errorf("%s.typed_config: required", path)
	}
	msg, err := xdswire.UnmarshalNew(any)
	if err != nil {
		return nil, fmt.Errorf("%s.typed_config: %w", path, err)
	}
	var (
		dest string
		sf   *corev3.SubstitutionFormatString
	)
	switch c := msg.(type) {
	case *streamv3.StdoutAccessLog:
		dest, sf = Stdout, c.GetLogFormat()
	case *filev3.FileAccessLog:
		if c.GetPath() == "" {
			return nil, fmt.Errorf("%s.typed_config.path: required", path)
		}
		dest, sf = c.GetPath(), c.GetLogFormat()
	default:
		return nil, fmt.Errorf("%s.typed_config: %s is not a supported access logger", path, any.GetTypeUrl())
	}
	f, err := compileFormat(sf, path+".typed_config.log_format")
	if err != nil {
		return nil, err
	}
	lg := &Logger{format: f}
	if l.GetFilter() != nil {
		if lg.keep, err = compileFilter(l.GetFilter(), path+".filter"); err != nil {
			return nil, err
		}
	}
	if lg.sink, err = sinks.get(dest); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return lg, nil
}

// format turns a record into one line, newline included.
type format interface {
	appendLine(dst []byte, r *record) []byte
}

// defaultText is Envoy's default format, for a logger that sets none.
const defaultText = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" " +
	"%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% " +
	"\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n"

func compileFormat(sf *corev3.SubstitutionFormatString, path string) (format, error) {
	switch {
	case sf == nil:
		t, err := parseTemplate(defaultText)
		return textFormat(t), err
	case sf.GetJsonFormat() != nil:
		return compileJSON(sf.GetJsonFormat(), path+".json_format")
	case sf.GetTextFormatSource() != nil:
		src := sf.GetTextFormatSource()
		if _, ok := src.GetSpecifier().(*corev3.DataSource_InlineString); !ok {
			return nil, fmt.Errorf("%s.text_format_source: only inline_string is supported", path)
		}
		t, err := parseTemplate(src.GetInlineString())
		if err != nil {
			return nil, fmt.Errorf("%s.text_format_source.inline_string: %w", path, err)
		}
		return textFormat(t), nil
	case sf.GetTextFormat() != "":
		t, err := parseTemplate(sf.GetTextFormat())
		if err != nil {
			return nil, fmt.Errorf("%s.text_format: %w", path, err)
		}
		return textFormat(t), nil
	}
	// An empty format is Envoy's default, as is none.
	t, err := parseTemplate(defaultText)
	return textFormat(t), err
}

type textFormat template

func (t textFormat) appendLine(dst []byte, r *record) []byte {
	dst = template(t).appendText(dst, r)
	if len(dst) == 0 || dst[len(dst)-1] != '\n' {
		dst = append(dst, '\n')
	}
	return dst
}

// jsonFormat writes one object a line, keys sorted. A value that is one
// operator keeps its type (a number, a string, or null when absent).
type jsonFormat []jsonField

type jsonField struct {
	key     []byte // quoted
	literal []byte // a number or boolean, encoded
	tmpl    template
}

func compileJSON(s *structpb.Struct, path string) (jsonFormat, error) {
	keys := make([]string, 0, len(s.GetFields()))
	for k := range s.GetFields() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out jsonFormat
	for _, k := range keys {
		v := s.GetFields()[k]
		qk, _ := json.Marshal(k)
		f := jsonField{key: qk}
		switch x := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			t, err := parseTemplate(x.StringValue)
			if err != nil {
				return nil, fmt.Errorf("%s[%q]: %w", path, k, err)
			}
			f.tmpl = t
		case *structpb.Value_NumberValue:
			if math.IsNaN(x.NumberValue) || math.IsInf(x.NumberValue, 0) {
				return nil, fmt.Errorf("%s[%q]: not a finite number", path, k)
			}
			f.literal = strconv.AppendFloat(nil, x.NumberValue, 'g', -1, 64)
		case *structpb.Value_BoolValue:
			f.literal = strconv.AppendBool(nil, x.BoolValue)
		default:
			return nil, fmt.Errorf("%s[%q]: only strings, numbers and booleans are supported", path, k)
		}
		out = append(out, f)
	}
	return out, nil
}

func (j jsonFormat) appendLine(dst []byte, r *record) []byte {
	dst = append(dst, '{')
	for i, f := range j {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f.key...)
		dst = append(dst, ':')
		switch {
		case f.literal != nil:
			dst = append(dst, f.literal...)
		case len(f.tmpl) == 1 && f.tmpl[0].op != nil:
			v := f.tmpl[0].op.eval(r)
			switch v.kind {
			case kindNumber:
				dst = strconv.AppendInt(dst, v.n, 10)
			case kindString:
				dst = appendJSONString(dst, v.s)
			default:
				dst = append(dst, "null"...)
			}
		default:
			var buf [128]byte
			dst = appendJSONString(dst, string(f.tmpl.appendText(buf[:0], r)))
		}
	}
	return append(dst, '}', '\n')
}

// appendJSONString quotes s as a JSON string, leaving <, > and & as they
// are (a log is not HTML) and replacing invalid UTF-8.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		default:
			dst = utf8.AppendRune(dst, r) // invalid bytes arrive as U+FFFD
		}
	}
	return append(dst, '"')
}

// filter decides whether a record is logged.
type filter func(*record) bool

func compileFilter(f *accesslogv3.AccessLogFilter, path string) (filter, error) {
	switch x := f.GetFilterSpecifier().(type) {
	case *accesslogv3.AccessLogFilter_StatusCodeFilter:
		cmp, err := compileComparison(x.StatusCodeFilter.GetComparison(), path+".status_code_filter.comparison")
		if err != nil {
			return nil, err
		}
		return func(r *record) bool { return r.req != nil && cmp(int64(r.req.Status)) }, nil
	case *accesslogv3.AccessLogFilter_DurationFilter:
		cmp, err := compileComparison(x.DurationFilter.GetComparison(), path+".duration_filter.comparison")
		if err != nil {
			return nil, err
		}
		return func(r *record) bool { return cmp(r.duration().Milliseconds()) }, nil
	case *accesslogv3.AccessLogFilter_ResponseFlagFilter:
		return compileFlags(x.ResponseFlagFilter.GetFlags(), path+".response_flag_filter.flags")
	case *accesslogv3.AccessLogFilter_OrFilter:
		fs, err := compileFilters(x.OrFilter.GetFilters(), path+".or_filter.filters")
		if err != nil {
			return nil, err
		}
		return func(r *record) bool {
			for _, f := range fs {
				if f(r) {
					return true
				}
			}
			return false
		}, nil
	case *accesslogv3.AccessLogFilter_AndFilter:
		fs, err := compileFilters(x.AndFilter.GetFilters(), path+".and_filter.filters")
		if err != nil {
			return nil, err
		}
		return func(r *record) bool {
			for _, f := range fs {
				if !f(r) {
					return false
				}
			}
			return true
		}, nil
	}
	return nil, fmt.Errorf("%s: this filter is not supported", path)
}

func compileFilters(in []*accesslogv3.AccessLogFilter, path string) ([]filter, error) {
	out := make([]filter, 0, len(in))
	for i, f := range in {
		c, err := compileFilter(f, path+"["+strconv.Itoa(i)+"]")
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func compileComparison(c *accesslogv3.ComparisonFilter, path string) (func(int64) bool, error) {
	want := int64(c.GetValue().GetDefaultValue())
	switch c.GetOp() {
	case accesslogv3.ComparisonFilter_EQ:
		return func(v int64) bool { return v == want }, nil
	case accesslogv3.ComparisonFilter_GE:
		return func(v int64) bool { return v >= want }, nil
	case accesslogv3.ComparisonFilter_LE:
		return func(v int64) bool { return v <= want }, nil
	case accesslogv3.ComparisonFilter_NE:
		return func(v int64) bool { return v != want }, nil
	}
	return nil, fmt.Errorf("%s.op: %s is not supported", path, c.GetOp())
}

// envoyFlags map Envoy's response flag codes onto the records' flags.
var envoyFlags = map[string]observe.Flags{
	"NR": observe.NoRoute, "UH": observe.NoHealthyUpstream, "UF": observe.UpstreamConnectFailure,
	"UR": observe.UpstreamReset, "UC": observe.UpstreamReset, "UT": observe.UpstreamTimeout,
	"UO": observe.Overflow, "UAEX": observe.Denied | observe.Unauthenticated, "RL": observe.RateLimited,
	"FI": observe.FaultInjected, "DI": observe.FaultInjected, "DC": observe.DownstreamClosed,
}

func compileFlags(codes []string, path string) (filter, error) {
	var want observe.Flags
	denied := false
	for i, c := range codes {
		f, ok := envoyFlags[c]
		if !ok {
			return nil, fmt.Errorf("%s[%d]: response flag %q is not supported", path, i, c)
		}
		want |= f
		denied = denied || c == "UAEX"
	}
	if len(codes) == 0 {
		want = ^observe.Flags(0)
		denied = true
	}
	return func(r *record) bool {
		if r.conn != nil {
			return denied && r.conn.Denied
		}
		return r.req.Flags&want != 0
	}, nil
}

// Log writes r's line if the logger keeps it.
func (l *Logger) log(r *record) {
	if l.keep != nil && !l.keep(r) {
		return
	}
	l.sink.write(l.format.appendLine(make([]byte, 0, 512), r))
}

// Observer logs HTTP requests with every logger of a connection manager.
type Observer []*Logger

// Start does nothing: a request is logged when it ends.
func (Observer) Start(*observe.Request) {}

// Done logs the request.
func (o Observer) Done(r *observe.Request) {
	rec := record{req: r}
	for _, l := range o {
		l.log(&rec)
	}
}

// ConnObserver logs TCP connections with every logger of a TCP proxy.
type ConnObserver []*Logger

// ConnStart does nothing: a connection is logged when it ends.
func (ConnObserver) ConnStart(*observe.Conn) {}

// ConnDone logs the connection.
func (o ConnObserver) ConnDone(c *observe.Conn) {
	rec := record{conn: c}
	for _, l := range o {
		l.log(&rec)
	}
}

var (
	_ observe.Observer     = Observer(nil)
	_ observe.ConnObserver = ConnObserver(nil)
)
