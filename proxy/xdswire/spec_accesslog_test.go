package xdswire

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
)

// Access logs: the file and stdout loggers, with JSON or text formats
// (command operators are checked by proxy/accesslog when compiled) and
// the status code, duration, response flag, and and or filters.
func init() {
	allow(&hcmv3.HttpConnectionManager{}, "access_log")
	allow(&tcpproxyv3.TcpProxy{}, "access_log")
	allow(&accesslogv3.AccessLog{}, "name", "filter", "typed_config")
	allow(&accesslogv3.AccessLogFilter{}, "status_code_filter", "duration_filter", "response_flag_filter",
		"or_filter", "and_filter")
	allow(&accesslogv3.StatusCodeFilter{}, "comparison")
	allow(&accesslogv3.DurationFilter{}, "comparison")
	allow(&accesslogv3.ComparisonFilter{}, "op", "value")
	allow(&corev3.RuntimeUInt32{}, "default_value", "runtime_key")
	allow(&accesslogv3.ResponseFlagFilter{}, "flags")
	allow(&accesslogv3.OrFilter{}, "filters")
	allow(&accesslogv3.AndFilter{}, "filters")
	allow(&streamv3.StdoutAccessLog{}, "log_format")
	allow(&filev3.FileAccessLog{}, "path", "log_format")
	allow(&corev3.SubstitutionFormatString{}, "json_format", "text_format_source", "text_format")
}
