package xdsmeta

import (
	"fmt"
	"net/netip"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Transparent mode: `weft proxy iptables` redirects the pod's TCP to the
// proxy, which tells mesh destinations apart by their virtual IP (VIP).

// ModeTransparent is a sidecar whose app's traffic is captured by iptables
// (`weft proxy iptables`): an outbound capture listener and an inbound one
// on the capture ports, instead of upstream ports.
const ModeTransparent ProxyMode = "transparent"

// Capture ports, as `weft proxy iptables` redirects to them by default.
const (
	OutboundCapturePort = 15001
	InboundCapturePort  = 15006
	DNSCapturePort      = 15053
)

// Capture addresses. The outbound listener only sees connections redirected
// from the pod itself, which land on loopback; inbound ones land on the
// pod's own address.
var (
	OutboundCaptureAddress = fmt.Sprintf("127.0.0.1:%d", OutboundCapturePort)
	InboundCaptureAddress  = fmt.Sprintf("0.0.0.0:%d", InboundCapturePort)
)

const (
	// OutboundCaptureListener receives every outbound TCP connection of a
	// transparent pod: one filter chain per mesh service VIP and port, the
	// passthrough chains for other destinations (detected HTTP, TLS to
	// ExternalService hosts, TCP to ExternalService endpoints), and a
	// default chain to PassthroughCluster. (The inbound capture listener
	// keeps the name InboundListener, so that inbound policy and metrics do
	// not care how traffic arrived.)
	OutboundCaptureListener = "outbound_capture"
	// PassthroughCluster is the ORIGINAL_DST cluster of destinations outside
	// the mesh: it connects to where the app was connecting. Requests sent
	// through it are counted with destination_service PassthroughCluster,
	// as Istio's destination_service_name.
	PassthroughCluster = "PassthroughCluster"
	// PassthroughRoute names the RouteConfiguration (RDS) of the outbound
	// capture listener's chains for HTTP detected on a connection to a
	// destination that is no mesh VIP: the ExternalServices' virtual hosts,
	// then a catch-all to PassthroughCluster (ALLOW_ANY) or answering 502
	// egress_denied (REGISTRY_ONLY).
	PassthroughRoute = "outbound_passthrough"
	// VIPMetadataNamespace is the filter_metadata key of the VIP table on
	// the outbound capture listener: a Struct from ServiceHost to the VIP.
	VIPMetadataNamespace = "weft.vips"
)

// VIPTable maps a mesh service's ServiceHost ("<service>.<namespace>") to
// its virtual IP.
type VIPTable map[string]netip.Addr

// Metadata encodes the table as listener metadata.
func (t VIPTable) Metadata() *corev3.Metadata {
	fields := make(map[string]*structpb.Value, len(t))
	for host, ip := range t {
		fields[host] = structpb.NewStringValue(ip.String())
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		VIPMetadataNamespace: {Fields: fields},
	}}
}

// Hosts lists the table's services, sorted.
func (t VIPTable) Hosts() []string {
	hosts := make([]string, 0, len(t))
	for h := range t {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	return hosts
}

// VIPTableFromListener reads the VIP table of the outbound capture listener
// (nil, nil for a listener without one): how a proxy, and its DNS resolver,
// learn which IP each mesh service answers on.
func VIPTableFromListener(l *listenerv3.Listener) (VIPTable, error) {
	md := l.GetMetadata().GetFilterMetadata()[VIPMetadataNamespace]
	if md == nil {
		return nil, nil
	}
	return VIPTableFromStruct(md)
}

// VIPTableFromStruct decodes the metadata Struct Metadata encodes, and says
// which entry is malformed.
func VIPTableFromStruct(s *structpb.Struct) (VIPTable, error) {
	t := make(VIPTable, len(s.GetFields()))
	for host, v := range s.GetFields() {
		sv, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return nil, fmt.Errorf("vip table: %q: want a string IPv4 address", host)
		}
		ip, err := netip.ParseAddr(sv.StringValue)
		if err != nil || !ip.Is4() {
			return nil, fmt.Errorf("vip table: %q: %q is not an IPv4 address", host, sv.StringValue)
		}
		if host == "" {
			return nil, fmt.Errorf("vip table: empty service name for %s", ip)
		}
		t[host] = ip
	}
	return t, nil
}
