package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/dns"
)

// Options is the proxy's static bootstrap configuration: everything else
// arrives over xDS.
type Options struct {
	Service   string
	Namespace string // default "default"
	Version   string // the workload's version label, such as v1
	// Control is the control plane's gRPC address (host:port).
	Control string
	// Token or TokenFile is the join token; TokenFile is re-read whenever needed.
	Token     string
	TokenFile string
	// CAFile holds the mesh root(s), PEM: it authenticates the control plane.
	CAFile string
	// App is the local application's address; Inbound the mTLS listener
	// other proxies reach; Admin the admin endpoint.
	App, Inbound, Admin string
	Upstreams           []xdsmeta.Upstream
	HTTPProxy           string
	// Mode is how the proxy is deployed; "" is explicit. An ingress
	// gateway has no App and no Inbound: it binds its Gateway listeners on
	// ListenIP (default 0.0.0.0) and is known by its Admin address.
	Mode     xdsmeta.ProxyMode
	ListenIP string
	// DNS is where the DNS resolver (proxy/dns) answers mesh names with
	// their VIPs: dns.DefaultAddr in transparent mode, none otherwise;
	// "off" turns it off. DNSUpstreams are where other names go (default:
	// the nameservers of /etc/resolv.conf).
	DNS          string
	DNSUpstreams []string
	// DrainDelay is how long a stopping proxy keeps serving after it has
	// told the control plane it is leaving, so peers stop sending first.
	DrainDelay time.Duration
	// DrainTimeout bounds how long in-flight requests may take to finish.
	DrainTimeout time.Duration
	Log          *slog.Logger
}

// Default fills in defaults.
func (o *Options) Default() {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.DrainDelay == 0 {
		o.DrainDelay = time.Second
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Mode == xdsmeta.ModeIngress && o.ListenIP == "" {
		o.ListenIP = "0.0.0.0"
	}
	switch {
	case o.DNS == "" && o.Mode == xdsmeta.ModeTransparent:
		o.DNS = dns.DefaultAddr
	case o.DNS == "off":
		o.DNS = ""
	}
}

// Validate names every problem with the options.
func (o *Options) Validate() error {
	var errs []error
	need := func(flag, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("--%s is required", flag))
		}
	}
	addr := func(flag, v string) {
		if v == "" {
			return
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			errs = append(errs, fmt.Errorf("--%s %q: want host:port", flag, v))
		}
	}
	need("service", o.Service)
	need("control", o.Control)
	need("ca-file", o.CAFile)
	if o.Mode == xdsmeta.ModeIngress {
		errs = append(errs, o.validateIngress()...)
	} else {
		need("app", o.App)
		need("inbound", o.Inbound)
	}
	need("admin", o.Admin)
	for flag, v := range map[string]string{"control": o.Control, "app": o.App, "inbound": o.Inbound, "admin": o.Admin, "http-proxy": o.HTTPProxy, "dns": o.DNS} {
		addr(flag, v)
	}
	if (o.Token == "") == (o.TokenFile == "") {
		errs = append(errs, errors.New("exactly one of --token and --token-file is required"))
	}
	if strings.Contains(o.Service, ".") || strings.Contains(o.Namespace, ".") {
		errs = append(errs, errors.New("--service and --namespace must not contain dots"))
	}
	seen := map[string]bool{}
	for _, u := range o.Upstreams {
		addr("upstream", u.Listen)
		if seen[u.Listen] {
			errs = append(errs, fmt.Errorf("--upstream: local address %s used twice", u.Listen))
		}
		seen[u.Listen] = true
	}
	return errors.Join(errs...)
}
