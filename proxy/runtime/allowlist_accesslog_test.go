package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/testpki"
)

// TestAccessLogValidation starts from the translator's golden (which
// carries the default denials access log and is accepted whole) and sets
// what the proxy does not honour: each is refused with its path.
func TestAccessLogValidation(t *testing.T) {
	const log = `listener "inbound": filter_chains[0].filters[0].typed_config(envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager).access_log[0]`
	tests := []struct {
		name string
		edit func(t *testing.T, l *accesslogv3.AccessLog)
		want string
	}{
		{"a header filter", func(t *testing.T, l *accesslogv3.AccessLog) {
			l.Filter = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{HeaderFilter: &accesslogv3.HeaderFilter{}}}
		}, log + ".filter.header_filter: field is not supported"},
		{"an unknown operator", func(t *testing.T, l *accesslogv3.AccessLog) {
			editAny(t, l.GetTypedConfig(), &streamv3.StdoutAccessLog{}, func(c *streamv3.StdoutAccessLog) {
				c.GetLogFormat().GetJsonFormat().Fields["peer"] = structpb.NewStringValue("%DOWNSTREAM_PEER_SUBJECT%")
			})
		}, log + `.typed_config.log_format.json_format["peer"]: command operator %DOWNSTREAM_PEER_SUBJECT% is not supported`},
		{"an unknown response flag", func(t *testing.T, l *accesslogv3.AccessLog) {
			l.Filter = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"OM"}}}}
		}, log + `.filter.response_flag_filter.flags[0]: response flag "OM" is not supported`},
		{"format options", func(t *testing.T, l *accesslogv3.AccessLog) {
			editAny(t, l.GetTypedConfig(), &streamv3.StdoutAccessLog{}, func(c *streamv3.StdoutAccessLog) {
				c.GetLogFormat().OmitEmptyValues = true
			})
		}, log + ".typed_config(envoy.extensions.access_loggers.stream.v3.StdoutAccessLog).log_format.omit_empty_values: field is not supported"},
	}
	golden, err := os.ReadFile(filepath.Join(translatorGoldens, "http.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := parseGolden(t, string(golden))
			for _, sec := range res.Secrets {
				if vc := sec.GetValidationContext(); vc != nil {
					vc.TrustedCa = rootCA(testpki.NewCA(t, "root").PEM()).GetValidationContext().GetTrustedCa()
				}
			}
			l := res.Listeners["inbound"]
			m := &hcmv3.HttpConnectionManager{}
			filter := l.FilterChains[0].Filters[len(l.FilterChains[0].Filters)-1]
			if err := filter.GetTypedConfig().UnmarshalTo(m); err != nil {
				t.Fatal(err)
			}
			if len(m.AccessLog) != 1 {
				t.Fatalf("the golden's inbound listener has %d access logs, want the default one", len(m.AccessLog))
			}
			tc.edit(t, m.AccessLog[0])
			filter.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, m)}
			rt := New(Options{})
			defer rt.Close()
			_, err := rt.build(res, rt.cur.Load())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant one containing %s", err, tc.want)
			}
		})
	}
}
