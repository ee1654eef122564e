package translate

import (
	"slices"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// Protocol detection on transparent listeners, as Istio does it: where the
// protocol of a captured connection is not declared (a destination outside
// the mesh, a port no Service declares), the http_inspector peeks at its
// first bytes and a chain matching application_protocols
// HTTPDetectedProtocols serves it as HTTP, a chain without a match as TCP.
// Ports a Service or ExternalService declares tcp are never inspected
// (filter_disabled): server-first protocols (MySQL, SMTP) send nothing
// until the server speaks, and must not wait for the detection timeout.

// ProtocolDetectionTimeout bounds the wait for a connection's first bytes;
// a connection that sends nothing in time is served as TCP, and the proxy
// counts it (weft_protocol_detection_fallbacks_total).
const ProtocolDetectionTimeout = 100 * time.Millisecond

const listenerHTTPInspector = "envoy.filters.listener.http_inspector"

// HTTPDetectedProtocols are the application protocols the http_inspector
// reports, as Envoy names them.
var HTTPDetectedProtocols = []string{"http/1.0", "http/1.1", "h2c"}

// HTTPDetectedMatch is the filter_chain_match of the chain that serves
// connections the http_inspector recognised as HTTP; the TCP chain beside
// it has no application_protocols and takes the rest.
func HTTPDetectedMatch() *listenerv3.FilterChainMatch {
	return &listenerv3.FilterChainMatch{ApplicationProtocols: slices.Clone(HTTPDetectedProtocols)}
}

// addProtocolDetection adds an http_inspector to a transparent listener
// that has a chain for detected HTTP (HTTPDetectedMatch), disabled on
// tcpPorts, next to a tls_inspector it may have, and makes a connection
// that sends nothing in ProtocolDetectionTimeout continue as TCP rather
// than be closed. A listener without such a chain is left alone: every
// one of its chains has a declared protocol (a Service port's protocol
// defaults to http), and inspecting would only delay server-first
// protocols.
func (t *translation) addProtocolDetection(l *listenerv3.Listener, tcpPorts []uint32) {
	if !slices.ContainsFunc(l.GetFilterChains(), detectsHTTP) {
		return
	}
	f := &listenerv3.ListenerFilter{
		Name:           listenerHTTPInspector,
		ConfigType:     &listenerv3.ListenerFilter_TypedConfig{TypedConfig: t.any(&httpinspectorv3.HttpInspector{})},
		FilterDisabled: portsPredicate(tcpPorts),
	}
	l.ListenerFilters = append(l.ListenerFilters, f)
	timeout := ProtocolDetectionTimeout
	if d := l.GetListenerFiltersTimeout(); d != nil && d.AsDuration() > 0 && d.AsDuration() < timeout {
		timeout = d.AsDuration()
	}
	l.ListenerFiltersTimeout = durationpb.New(timeout)
	l.ContinueOnListenerFiltersTimeout = true
}

// detectsHTTP tells whether a chain serves what the http_inspector
// recognised.
func detectsHTTP(fc *listenerv3.FilterChain) bool {
	return slices.ContainsFunc(fc.GetFilterChainMatch().GetApplicationProtocols(), func(p string) bool {
		return slices.Contains(HTTPDetectedProtocols, p)
	})
}

// portsPredicate matches a connection to any of ports, or is nil when there
// are none. Consecutive ports become one range.
func portsPredicate(ports []uint32) *listenerv3.ListenerFilterChainMatchPredicate {
	ports = slices.Clone(ports)
	slices.Sort(ports)
	ports = slices.Compact(ports)
	var rules []*listenerv3.ListenerFilterChainMatchPredicate
	for i := 0; i < len(ports); {
		j := i + 1
		for j < len(ports) && ports[j] == ports[j-1]+1 {
			j++
		}
		rules = append(rules, &listenerv3.ListenerFilterChainMatchPredicate{
			Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
				DestinationPortRange: &typev3.Int32Range{Start: int32(ports[i]), End: int32(ports[j-1]) + 1},
			},
		})
		i = j
	}
	switch len(rules) {
	case 0:
		return nil
	case 1:
		return rules[0]
	}
	return &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_OrMatch{
		OrMatch: &listenerv3.ListenerFilterChainMatchPredicate_MatchSet{Rules: rules},
	}}
}

// tcpPorts are the ports some Service or ExternalService declares tcp:
// the inspectors skip them.
func (in *Input) tcpPorts() []uint32 {
	var out []uint32
	for _, spec := range in.Services {
		for _, p := range spec.Ports {
			if p.Protocol == v1alpha1.ProtocolTCP && p.Port > 0 {
				out = append(out, uint32(p.Port))
			}
		}
	}
	for _, es := range in.ExternalServices {
		for _, p := range es.Ports {
			if p.Protocol == v1alpha1.ExternalTCP && p.Port > 0 {
				out = append(out, uint32(p.Port))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
