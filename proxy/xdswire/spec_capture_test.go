package xdswire

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// Transparent capture (capture.go): a listener that receives redirected
// connections (use_original_dst), matches chains on the original
// destination (prefix_ranges and destination_port, spec_detect_test.go)
// and sends the rest to its default_filter_chain; ORIGINAL_DST clusters
// (type and lb_policy CLUSTER_PROVIDED are checked by the cluster
// compiler), which TcpProxy passthrough chains and HCM routes send to. The
// listener's metadata (the VIP table, the ExternalService hosts) is
// checked when the listener is compiled (captureMetadata).
func init() {
	allow(&listenerv3.Listener{}, "use_original_dst", "default_filter_chain")
}
