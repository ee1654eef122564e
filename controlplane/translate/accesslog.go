package translate

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// Access loggers, as Envoy names them.
const (
	accessLoggerFile   = "envoy.access_loggers.file"
	accessLoggerStdout = "envoy.access_loggers.stdout"
)

// Response flags (Envoy's short codes) that mark a policy decision:
// UAEX an authorisation refusal (for TCP, a network RBAC close), RL a rate limit.
const (
	flagUnauthorized = "UAEX"
	flagRateLimited  = "RL"
)

// accessLogs are the access_log of a connection manager (http) or a TCP
// proxy on a listener whose stat prefix is statPrefix, from the Mesh's
// accessLog (denials as JSON to stdout when it sets none).
func (t *translation) accessLogs(statPrefix string, http bool) []*accesslogv3.AccessLog {
	cfg := v1alpha1.DefaultAccessLog()
	if t.in.Mesh.AccessLog != nil {
		cfg = *t.in.Mesh.AccessLog
		cfg.Default()
	}
	if cfg.Mode == v1alpha1.AccessLogOff {
		return nil
	}
	inbound := statPrefix == xdsmeta.InboundListener
	format := &corev3.SubstitutionFormatString{}
	if cfg.Format == v1alpha1.AccessLogText {
		format.Format = &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: accessLogText(inbound, http)},
		}}
	} else {
		format.Format = &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: accessLogJSON(inbound, http)}
	}
	log := &accesslogv3.AccessLog{}
	if cfg.Path == v1alpha1.AccessLogStdout {
		log.Name = accessLoggerStdout
		log.ConfigType = &accesslogv3.AccessLog_TypedConfig{TypedConfig: t.any(&streamv3.StdoutAccessLog{
			AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{LogFormat: format},
		})}
	} else {
		log.Name = accessLoggerFile
		log.ConfigType = &accesslogv3.AccessLog_TypedConfig{TypedConfig: t.any(&filev3.FileAccessLog{
			Path:            cfg.Path,
			AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: format},
		})}
	}
	if cfg.Mode == v1alpha1.AccessLogDenials {
		log.Filter = denialsFilter(http, inbound)
	}
	return []*accesslogv3.AccessLog{log}
}

// denialsFilter keeps what policy refused: for HTTP a request marked
// unauthorised or rate limited and, where policy is enforced (inbound), a
// 401 or 403 (Envoy marks RBAC and JWT refusals by status only); for TCP
// a connection closed by network RBAC. An outbound listener does not log
// the 403 it relays from the destination, which logs it itself.
func denialsFilter(http, inbound bool) *accesslogv3.AccessLogFilter {
	flags := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{flagUnauthorized, flagRateLimited}},
	}}
	if http && !inbound {
		return flags
	}
	if !http {
		flags.GetResponseFlagFilter().Flags = []string{flagUnauthorized}
		return flags
	}
	status := func(code uint32) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
			StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{
				Op:    accesslogv3.ComparisonFilter_EQ,
				Value: &corev3.RuntimeUInt32{DefaultValue: code, RuntimeKey: "weft.access_log.denial_status"},
			}},
		}}
	}
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{
		OrFilter: &accesslogv3.OrFilter{Filters: []*accesslogv3.AccessLogFilter{flags, status(401), status(403)}},
	}}
}

// accessLogFields are the JSON keys of a line and the command operators
// that fill them.
func accessLogFields(inbound, http bool) [][2]string {
	direction, destination, tls := "outbound", "%UPSTREAM_PEER_URI_SAN%", "%UPSTREAM_TLS_VERSION%"
	if inbound {
		direction, destination, tls = "inbound", "%DOWNSTREAM_LOCAL_URI_SAN%", "%DOWNSTREAM_TLS_VERSION%"
	}
	fields := [][2]string{
		{"time", "%START_TIME%"},
		{"direction", direction},
		{"source", "%DOWNSTREAM_PEER_URI_SAN%"},
		{"source_address", "%DOWNSTREAM_REMOTE_ADDRESS%"},
		{"destination", destination},
		{"upstream_cluster", "%UPSTREAM_CLUSTER%"},
		{"upstream_host", "%UPSTREAM_HOST%"},
	}
	if http {
		fields = append(fields, [][2]string{
			{"route", "%ROUTE_NAME%"},
			{"method", "%REQ(:METHOD)%"},
			{"authority", "%REQ(:AUTHORITY)%"},
			{"path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"},
			{"protocol", "%PROTOCOL%"},
			{"status", "%RESPONSE_CODE%"},
			{"grpc_status", "%GRPC_STATUS_NUMBER%"},
			{"flags", "%RESPONSE_FLAGS%"},
			{"details", "%RESPONSE_CODE_DETAILS%"},
			{"attempts", "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"},
			{"request_id", "%REQ(X-REQUEST-ID)%"},
			{"upstream_ms", "%RESPONSE_DURATION%"},
		}...)
	} else {
		fields = append(fields, [][2]string{
			{"flags", "%RESPONSE_FLAGS%"},
			{"details", "%CONNECTION_TERMINATION_DETAILS%"},
		}...)
	}
	return append(fields, [][2]string{
		{"bytes_received", "%BYTES_RECEIVED%"},
		{"bytes_sent", "%BYTES_SENT%"},
		{"duration_ms", "%DURATION%"},
		{"tls_version", tls},
	}...)
}

func accessLogJSON(inbound, http bool) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for _, f := range accessLogFields(inbound, http) {
		s.Fields[f[0]] = structpb.NewStringValue(f[1])
	}
	return s
}

// accessLogText is one line of key=value pairs in the JSON format's order.
func accessLogText(inbound, http bool) string {
	line := ""
	for i, f := range accessLogFields(inbound, http) {
		if i > 0 {
			line += " "
		}
		line += f[0] + "=" + f[1]
	}
	return line + "\n"
}
