package xdsmeta

// Tracing. The Mesh's spec.tracing becomes the OpenTelemetry tracer
// (envoy.tracers.opentelemetry) on every HttpConnectionManager, exporting
// through the STATIC cluster TracingCluster.
const (
	// TracingCluster is the OTLP collector's cluster.
	TracingCluster = "tracing|otlp"
	// TracingProvider is the tracer's name in HttpConnectionManager.tracing.provider.
	TracingProvider = "envoy.tracers.opentelemetry"
	// Keys of the collector cluster's filter_metadata[MetadataNamespace]
	// when the collector is reached over TLS. The proxy's clusters take
	// trust bundles from SDS only (the mesh's ROOTCA) and a collector's CA
	// is not the mesh's, so it rides beside the cluster, as the JWKS roots
	// do beside the filter chain, and the proxy's tracer dials TLS itself
	// (verifying the chain to TracingCAKey and the name TracingSNIKey).
	TracingTLSKey = "otlp_tls"
	TracingCAKey  = "otlp_ca"
	TracingSNIKey = "otlp_sni"
)
