package controlplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is the control plane's static configuration (its flags).
type Config struct {
	// DataDir holds the embedded etcd, the client config and ca.crt.
	DataDir string
	// GRPCAddr serves ADS, Identity and Registry (TLS).
	GRPCAddr string
	// APIAddr serves the HTTPS API the CLI uses.
	APIAddr string
	// DashboardAddr serves the dashboard and the control plane's own /metrics.
	DashboardAddr string
	// EtcdEndpoints, if set, use an external etcd instead of the embedded one.
	EtcdEndpoints []string
	// TrustDomain is fixed at first start.
	TrustDomain string
	// Version is reported by the API.
	Version string
	Log     *slog.Logger
	// FastStore shortens the embedded etcd's timers (tests).
	FastStore bool
	// CACert and CAKey, set together, name an external CA (PEM files) that
	// signs SVIDs instead of the mesh root kept in the store; CABundle
	// optionally names the roots proxies trust when CACert does not end
	// with its root.
	CACert, CAKey, CABundle string
	// ScrapeInterval is how often every proxy's /metrics is read for
	// `weft stat` and the dashboard; zero means telemetry.DefaultInterval.
	ScrapeInterval time.Duration
	// VIPRange is the IPv4 CIDR Services' virtual IPs are allocated from
	// (transparent mode); "" means vip.DefaultRange, 240.240.0.0/16.
	VIPRange string
}

// DefaultDataDir is ~/.weft/control.
func DefaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".weft/control"
	}
	return filepath.Join(home, ".weft", "control")
}

// Default fills in defaults.
func (c *Config) Default() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.GRPCAddr == "" {
		c.GRPCAddr = "127.0.0.1:15010"
	}
	if c.APIAddr == "" {
		c.APIAddr = "127.0.0.1:15011"
	}
	if c.DashboardAddr == "" {
		c.DashboardAddr = "127.0.0.1:15014"
	}
	if c.TrustDomain == "" {
		c.TrustDomain = "weft.local"
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Validate names every problem.
func (c *Config) Validate() error {
	var errs []error
	for flag, v := range map[string]string{"grpc-addr": c.GRPCAddr, "api-addr": c.APIAddr, "dashboard-addr": c.DashboardAddr} {
		if _, _, err := net.SplitHostPort(v); err != nil {
			errs = append(errs, fmt.Errorf("--%s %q: want host:port", flag, v))
		}
	}
	for _, e := range c.EtcdEndpoints {
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			errs = append(errs, fmt.Errorf("--etcd-endpoints %q: want a URL such as http://127.0.0.1:2379", e))
		}
	}
	if c.TrustDomain != strings.ToLower(c.TrustDomain) || strings.ContainsAny(c.TrustDomain, "/: ") {
		errs = append(errs, fmt.Errorf("--trust-domain %q: want a lowercase DNS name", c.TrustDomain))
	}
	if (c.CACert == "") != (c.CAKey == "") {
		errs = append(errs, errors.New("--ca-cert and --ca-key go together: give both for an external CA, or neither"))
	}
	if c.ScrapeInterval != 0 && c.ScrapeInterval < time.Second {
		errs = append(errs, fmt.Errorf("--scrape-interval %s: want at least 1s", c.ScrapeInterval))
	}
	if c.VIPRange != "" {
		if p, err := netip.ParsePrefix(c.VIPRange); err != nil || !p.Addr().Is4() || p.Bits() > 30 {
			errs = append(errs, fmt.Errorf("--vip-range %q: want an IPv4 CIDR of at least 4 addresses, like 240.240.0.0/16", c.VIPRange))
		}
	}
	if c.CABundle != "" && c.CACert == "" {
		errs = append(errs, errors.New("--ca-bundle needs --ca-cert and --ca-key"))
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}

// ClientConfigPath is where the CLI's config is written.
func (c *Config) ClientConfigPath() string { return filepath.Join(c.DataDir, "config") }

// CAFilePath is where the trust bundle is written for proxies.
func (c *Config) CAFilePath() string { return filepath.Join(c.DataDir, "ca.crt") }

// hostsFor lists the names the serving certificate must carry for addr.
func hostsFor(addrs ...string) []string {
	set := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil || h == "" || h == "0.0.0.0" || h == "::" {
			continue
		}
		set[h] = true
	}
	if name, err := os.Hostname(); err == nil {
		set[name] = true
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	return out
}
