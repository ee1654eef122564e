package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/identity"
	"github.com/weftmesh/weft/proxy/registration"
	"github.com/weftmesh/weft/proxy/runtime"
	"github.com/weftmesh/weft/proxy/xdsclient"
)

// proxyState is what the admin endpoint reads.
type proxyState struct {
	opts     Options
	id       *identity.Source
	rt       *runtime.Runtime
	xds      *xdsclient.Client
	reg      *registration.Registration
	draining atomic.Bool

	drainOnce sync.Once
	drainCh   chan struct{}
}

func (p *proxyState) Ready() (bool, string) {
	switch {
	case p.draining.Load():
		return false, "draining"
	case p.id.Current() == nil:
		return false, "no identity yet"
	case !p.xds.Synced():
		return false, "waiting for the first complete xDS config"
	}
	return true, ""
}

func (p *proxyState) ConfigDump() any {
	return map[string]any{"versions": p.xds.Versions(), "resources": p.rt.ConfigDump()}
}

func (p *proxyState) WriteClusters(w io.Writer) { p.rt.WriteClusters(w) }

func (p *proxyState) Certificates() any {
	svid := p.id.Current()
	if svid == nil {
		return map[string]any{"svid": nil}
	}
	// The bundle peers are verified against is SDS ROOTCA; before it
	// arrives, the one returned with the SVID.
	bundle := svid.Bundle
	if b := p.rt.TrustBundle(xdsmeta.SecretRootCA); b != nil {
		bundle = b.Roots()
	}
	var roots []map[string]any
	chainsTo := ""
	for _, c := range bundle {
		sum := sha256.Sum256(c.Raw)
		fp := hex.EncodeToString(sum[:])
		roots = append(roots, map[string]any{"subject": c.Subject.String(), "sha256": fp, "notAfter": c.NotAfter})
		if chainsTo == "" && svid.ChainsTo(c) {
			chainsTo = fp
		}
	}
	return map[string]any{
		"svid": map[string]any{
			"spiffeID": svid.ID.String(), "serial": svid.Leaf.SerialNumber.Text(16),
			"notBefore": svid.Leaf.NotBefore, "notAfter": svid.Leaf.NotAfter, "received": svid.Received,
			"issuer": svid.Leaf.Issuer.String(), "rootSHA256": chainsTo,
		},
		"trustBundle": roots,
	}
}

func (p *proxyState) Drain() { p.drainOnce.Do(func() { close(p.drainCh) }) }

// markReadyWhenSynced tells the control plane the workload may receive
// traffic once the proxy holds a complete config.
func (p *proxyState) markReadyWhenSynced(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ok, _ := p.Ready(); ok {
				if p.reg != nil {
					p.reg.SetReady(true)
				}
				log.Info("proxy ready")
				return
			}
		}
	}
}

// metrics are the proxy's own health: xDS, configuration, certificate and
// build.
type metrics struct {
	connected prometheus.Gauge
	acks      *prometheus.CounterVec
	nacks     *prometheus.CounterVec
	// config is the version of each type's last accepted configuration:
	// one series per type, at 1.
	config   *prometheus.GaugeVec
	configMu sync.Mutex
	versions map[string]string // type -> version exported
}

func newMetrics(reg prometheus.Registerer, id *identity.Source) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "weft_proxy_xds_connected", Help: "1 while the xDS stream to the control plane is up."}),
		acks:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_proxy_xds_updates_total", Help: "xDS updates applied, by type."}, []string{"type"}),
		nacks:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_proxy_xds_rejected_total", Help: "xDS updates rejected (NACKed), by type."}, []string{"type"}),
		config: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_proxy_config_info",
			Help: "The version of the last accepted configuration of each xDS type (always 1).",
		}, []string{"type", "config_version"}),
		versions: map[string]string{},
	}
	expiry := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_proxy_certificate_expiry_timestamp_seconds", Help: "Unix time at which the proxy's current SVID expires.",
	}, func() float64 {
		if s := id.Current(); s != nil {
			return float64(s.Leaf.NotAfter.Unix())
		}
		return 0
	})
	version, goVersion := buildVersion()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "weft_proxy_build_info",
		Help:        "The proxy's build (always 1).",
		ConstLabels: prometheus.Labels{"build_version": version, "go_version": goVersion},
	})
	build.Set(1)
	reg.MustRegister(m.connected, m.acks, m.nacks, m.config, expiry, build)
	return m
}

// buildVersion returns the main module's version and the Go version the
// binary was built with.
func buildVersion() (version, goVersion string) {
	version, goVersion = "unknown", goruntime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	return version, goVersion
}

func (m *metrics) xdsEvent(e xdsclient.Event) {
	switch e.Kind {
	case "connected":
		m.connected.Set(1)
	case "disconnected":
		m.connected.Set(0)
	case "ack":
		m.acks.WithLabelValues(typeName(e.TypeURL)).Inc()
		m.configVersion(typeName(e.TypeURL), e.Version)
	case "nack":
		m.nacks.WithLabelValues(typeName(e.TypeURL)).Inc()
	}
}

// configVersion replaces a type's version series.
func (m *metrics) configVersion(typ, version string) {
	m.configMu.Lock()
	defer m.configMu.Unlock()
	if old, ok := m.versions[typ]; ok {
		if old == version {
			return
		}
		m.config.DeleteLabelValues(typ, old)
	}
	m.versions[typ] = version
	m.config.WithLabelValues(typ, version).Set(1)
}

// typeName is the short name of an xDS type URL:
// "type.googleapis.com/envoy.config.cluster.v3.Cluster" is "Cluster".
func typeName(url string) string {
	if i := strings.LastIndexByte(url, '.'); i >= 0 {
		return url[i+1:]
	}
	return url
}
