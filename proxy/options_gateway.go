package proxy

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/weftmesh/weft/api/xdsmeta"
)

// validateIngress checks the options of an ingress gateway: it has no app,
// no inbound listener and no upstream ports, and binds on one IP.
func (o *Options) validateIngress() []error {
	var errs []error
	for flag, v := range map[string]string{"app": o.App, "inbound": o.Inbound, "http-proxy": o.HTTPProxy} {
		if v != "" {
			errs = append(errs, fmt.Errorf("--%s is not used with --mode ingress: a gateway has no app and no inbound listener", flag))
		}
	}
	if len(o.Upstreams) > 0 {
		errs = append(errs, errors.New("--upstream is not used with --mode ingress: Routes attached to the Gateway say where requests go"))
	}
	if _, err := netip.ParseAddr(o.ListenIP); err != nil {
		errs = append(errs, fmt.Errorf("--listen-ip %q: want an IP address", o.ListenIP))
	}
	return errs
}

// workloadID is the proxy's ID in the mesh: its inbound address for a
// sidecar, its admin address for a gateway, which has no inbound listener.
func (o *Options) workloadID() string {
	if o.Mode == xdsmeta.ModeIngress {
		return xdsmeta.WorkloadID(o.Service, o.Namespace, o.Admin)
	}
	return xdsmeta.WorkloadID(o.Service, o.Namespace, o.Inbound)
}
