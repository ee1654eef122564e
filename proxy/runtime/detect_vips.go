package runtime

import (
	"net/netip"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/xdsmeta"
)

// ServiceVIP returns the virtual IP of a mesh service in the configuration
// in service: the VIP table the control plane sends on the outbound capture
// listener's metadata (xdsmeta.VIPTable). The sidecar's DNS resolver
// (proxy/dns) answers with it, so a name resolves to what the capture
// listener's chains match. It reads one entry, without allocating a table.
func (r *Runtime) ServiceVIP(service, namespace string) (netip.Addr, bool) {
	v := r.captureMetadata(xdsmeta.VIPMetadataNamespace, xdsmeta.ServiceHost(service, namespace))
	s, ok := v.GetKind().(*structpb.Value_StringValue)
	if !ok {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(s.StringValue)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, false
	}
	return ip, true
}

// ExternalHostAddrs returns the addresses of an ExternalService host in
// the configuration in service (xdsmeta.ExternalHostTable): the static
// endpoints the sidecar's DNS resolver answers the host with, so that an
// app resolving it connects where the capture listener routes it. host is
// matched exactly, case-insensitively, with or without the root dot; nil
// when the host is not in the table.
func (r *Runtime) ExternalHostAddrs(host string) []netip.Addr {
	v := r.captureMetadata(xdsmeta.ExternalHostsMetadataNamespace, strings.ToLower(strings.TrimSuffix(host, ".")))
	if v == nil {
		return nil
	}
	addrs, err := xdsmeta.ExternalHostAddrs(v)
	if err != nil {
		return nil // refused when the listener was applied
	}
	return addrs
}

// captureMetadata reads one entry of a table in the outbound capture
// listener's metadata, or nil.
func (r *Runtime) captureMetadata(namespace, key string) *structpb.Value {
	l := r.cur.Load().res.Listeners[xdsmeta.OutboundCaptureListener]
	return l.GetMetadata().GetFilterMetadata()[namespace].GetFields()[key]
}
