package translate

import (
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
)

func accessLogServices() []service {
	return []service{
		{ns: "shop", name: "web", protocol: v1alpha1.ProtocolHTTP, port: 8080, workloads: []*meshv1.Workload{
			workload("shop", "web", "v1", "127.0.6.1:15006", true),
		}},
		{ns: "shop", name: "db", protocol: v1alpha1.ProtocolTCP, port: 5432, workloads: []*meshv1.Workload{
			workload("shop", "db", "v1", "127.0.6.3:15006", true),
		}},
	}
}

// listenerAccessLogs returns, by listener name, the access_log of its
// connection manager or TCP proxy, and whether it is HTTP.
func listenerAccessLogs(t *testing.T, r *Resources) (map[string][]*accesslogv3.AccessLog, map[string]bool) {
	t.Helper()
	logs, http := map[string][]*accesslogv3.AccessLog{}, map[string]bool{}
	for _, res := range r.Listeners {
		l := res.(*listenerv3.Listener)
		if err := l.ValidateAll(); err != nil {
			t.Fatalf("%s: %v", l.GetName(), err)
		}
		fs := l.GetFilterChains()[0].GetFilters()
		last := fs[len(fs)-1].GetTypedConfig()
		h, tp := &hcmv3.HttpConnectionManager{}, &tcpproxyv3.TcpProxy{}
		switch {
		case last.UnmarshalTo(h) == nil:
			logs[l.GetName()], http[l.GetName()] = h.GetAccessLog(), true
		case last.UnmarshalTo(tp) == nil:
			logs[l.GetName()] = tp.GetAccessLog()
		default:
			t.Fatalf("%s: last filter is %s", l.GetName(), last.GetTypeUrl())
		}
	}
	return logs, http
}

func TestAccessLogModes(t *testing.T) {
	n := node("shop", "web", "127.0.6.1:15006", "db=127.0.0.1:9002")
	n.HTTPProxy = "127.0.0.1:15080"
	cases := []struct {
		name string
		log  *v1alpha1.AccessLog
	}{
		{name: "default"},
		{name: "all", log: &v1alpha1.AccessLog{Mode: v1alpha1.AccessLogAll, Format: v1alpha1.AccessLogText, Path: "/dev/null"}},
		{name: "off", log: &v1alpha1.AccessLog{Mode: v1alpha1.AccessLogOff}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := input(accessLogServices(), false)
			in.Mesh.AccessLog = c.log
			in.Mesh.Default()
			r, err := ForNode(in, n)
			if err != nil {
				t.Fatal(err)
			}
			logs, http := listenerAccessLogs(t, r)
			if len(logs) != 3 {
				t.Fatalf("%d listeners, want inbound, the db upstream and the HTTP proxy", len(logs))
			}
			for name, ls := range logs {
				if c.name == "off" {
					if len(ls) != 0 {
						t.Errorf("%s: access_log %v with mode off", name, ls)
					}
					continue
				}
				if len(ls) != 1 {
					t.Fatalf("%s: %d access logs", name, len(ls))
				}
				l := ls[0]
				switch c.name {
				case "default":
					std := &streamv3.StdoutAccessLog{}
					if err := l.GetTypedConfig().UnmarshalTo(std); err != nil || l.GetName() != accessLoggerStdout {
						t.Fatalf("%s: %s %v", name, l.GetName(), err)
					}
					fields := std.GetLogFormat().GetJsonFormat().GetFields()
					if http[name] != (fields["status"] != nil) || fields["source"].GetStringValue() != "%DOWNSTREAM_PEER_URI_SAN%" {
						t.Errorf("%s: JSON fields %v", name, fields)
					}
					inbound := name == "inbound"
					if http[name] && inbound && len(l.GetFilter().GetOrFilter().GetFilters()) != 3 ||
						http[name] && !inbound && strings.Join(l.GetFilter().GetResponseFlagFilter().GetFlags(), ",") != "UAEX,RL" ||
						!http[name] && strings.Join(l.GetFilter().GetResponseFlagFilter().GetFlags(), ",") != "UAEX" {
						t.Errorf("%s: denials filter %v", name, l.GetFilter())
					}
				case "all":
					f := &filev3.FileAccessLog{}
					if err := l.GetTypedConfig().UnmarshalTo(f); err != nil || f.GetPath() != "/dev/null" {
						t.Fatalf("%s: %v %v", name, f, err)
					}
					if l.GetFilter() != nil {
						t.Errorf("%s: mode all has a filter %v", name, l.GetFilter())
					}
					if text := f.GetLogFormat().GetTextFormatSource().GetInlineString(); !strings.HasPrefix(text, "time=%START_TIME% direction=") || !strings.HasSuffix(text, "\n") {
						t.Errorf("%s: text format %q", name, text)
					}
				}
			}
			if c.name != "all" {
				return
			}
			checkGolden(t, r, "accesslog-all.golden")
		})
	}
}
