package xdswire

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The fields of a Cluster that protect and spread load over its endpoints.
func init() {
	allow(&clusterv3.Cluster{}, "circuit_breakers")
	allow(&clusterv3.CircuitBreakers{}, "thresholds")
	allow(&clusterv3.CircuitBreakers_Thresholds{}, "priority", "max_connections",
		"max_pending_requests", "max_requests", "max_retries", "retry_budget")
	allow(&clusterv3.CircuitBreakers_Thresholds_RetryBudget{}, "budget_percent", "min_retry_concurrency")
	leaf(&typev3.Percent{}, &wrapperspb.UInt64Value{})

	// Consecutive-error detectors only: success_rate_* and
	// failure_percentage_* stay refused.
	allow(&clusterv3.Cluster{}, "outlier_detection")
	allow(&clusterv3.OutlierDetection{}, "consecutive_5xx", "consecutive_gateway_failure",
		"consecutive_local_origin_failure", "split_external_local_origin_errors", "interval",
		"base_ejection_time", "max_ejection_time", "max_ejection_percent", "enforcing_consecutive_5xx",
		"enforcing_consecutive_gateway_failure", "enforcing_consecutive_local_origin_failure")

	allow(&clusterv3.Cluster{}, "health_checks")
	allow(&corev3.HealthCheck{}, "timeout", "interval", "interval_jitter", "no_traffic_interval",
		"healthy_threshold", "unhealthy_threshold", "http_health_check", "grpc_health_check")
	allow(&corev3.HealthCheck_HttpHealthCheck{}, "host", "path", "expected_statuses", "codec_client_type")
	allow(&corev3.HealthCheck_GrpcHealthCheck{}, "service_name", "authority")
	allow(&typev3.Int64Range{}, "start", "end")

	allow(&clusterv3.Cluster{}, "least_request_lb_config", "ring_hash_lb_config")
	allow(&clusterv3.Cluster_LeastRequestLbConfig{}, "choice_count")
	allow(&clusterv3.Cluster_RingHashLbConfig{}, "minimum_ring_size", "maximum_ring_size", "hash_function")
}
