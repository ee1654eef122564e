package proxy

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/proxy/dns"
	"github.com/weftmesh/weft/proxy/runtime"
)

// listenDNS opens the sidecar's DNS resolver on o.DNS: mesh names resolve
// to the VIPs of the configuration in service, ExternalService hosts to
// their static endpoints, other names go to o.DNSUpstreams or the pod's
// resolv.conf nameservers.
func listenDNS(o Options, rt *runtime.Runtime, reg prometheus.Registerer, log *slog.Logger) (*dns.Server, error) {
	upstreams := o.DNSUpstreams
	if len(upstreams) == 0 {
		var err error
		switch upstreams, err = dns.ReadResolvConf(dns.ResolvConf); {
		case errors.Is(err, fs.ErrNotExist):
			// No resolver at all: mesh names still resolve (dns.Listen warns).
		case err != nil:
			return nil, fmt.Errorf("proxy: --dns: %w (or set --dns-upstream)", err)
		}
	}
	srv, err := dns.Listen(dns.Options{
		Addr: o.DNS, Upstreams: upstreams, Namespace: o.Namespace,
		Table: dns.TableFunc(rt.ServiceVIP), Hosts: dns.HostTableFunc(rt.ExternalHostAddrs), Metrics: reg, Log: log,
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	log.Info("DNS resolver started", "address", srv.Addr(), "upstreams", upstreams)
	return srv, nil
}
