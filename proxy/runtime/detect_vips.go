package runtime

import (
	"net/netip"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/xdsmeta"
)

// ServiceVIP returns the virtual IP of a mesh service in the configuration
// in service: the VIP table the control plane sends on the outbound capture
// listener's metadata (xdsmeta.VIPTable). The sidecar's DNS resolver
// (proxy/dns) answers with it, so a name resolves to what the capture
// listener's chains match. It reads one entry, without allocating a table.
func (r *Runtime) ServiceVIP(service, namespace string) (netip.Addr, bool) {
	l := r.cur.Load().res.Listeners[xdsmeta.OutboundCaptureListener]
	v := l.GetMetadata().GetFilterMetadata()[xdsmeta.VIPMetadataNamespace].GetFields()[xdsmeta.ServiceHost(service, namespace)]
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
