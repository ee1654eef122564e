package xdswire

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Tracing: HttpConnectionManager.tracing with the OpenTelemetry tracer
// (envoy.tracers.opentelemetry) exporting over OTLP gRPC or HTTP through a
// STATIC cluster; random sampling; literal custom tags. proxy/trace records
// the spans (observers_tracing.go compiles the config).
func init() {
	allow(&hcmv3.HttpConnectionManager{}, "tracing")
	allow(&hcmv3.HttpConnectionManager_Tracing{}, "provider", "random_sampling", "custom_tags")
	allow(&tracev3.Tracing_Http{}, "name", "typed_config")
	allow(&tracev3.OpenTelemetryConfig{}, "grpc_service", "http_service", "service_name")
	allow(&corev3.GrpcService{}, "envoy_grpc", "timeout")
	allow(&corev3.GrpcService_EnvoyGrpc{}, "cluster_name", "authority")
	allow(&corev3.HttpService{}, "http_uri")
	allow(&corev3.HttpUri{}, "uri", "cluster", "timeout")
	allow(&typev3.Percent{}, "value")
	allow(&tracingv3.CustomTag{}, "tag", "literal")
	allow(&tracingv3.CustomTag_Literal{}, "value")
}
