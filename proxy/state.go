package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
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
				p.reg.SetReady(true)
				log.Info("proxy ready")
				return
			}
		}
	}
}

// metrics are the proxy's own health: xDS and certificate.
type metrics struct {
	connected prometheus.Gauge
	acks      *prometheus.CounterVec
	nacks     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, id *identity.Source) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "weft_proxy_xds_connected", Help: "1 while the xDS stream to the control plane is up."}),
		acks:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_proxy_xds_updates_total", Help: "xDS updates applied, by type."}, []string{"type"}),
		nacks:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_proxy_xds_rejected_total", Help: "xDS updates rejected (NACKed), by type."}, []string{"type"}),
	}
	expiry := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_proxy_certificate_expiry_seconds", Help: "Unix time at which the proxy's current SVID expires.",
	}, func() float64 {
		if s := id.Current(); s != nil {
			return float64(s.Leaf.NotAfter.Unix())
		}
		return 0
	})
	reg.MustRegister(m.connected, m.acks, m.nacks, expiry)
	return m
}

func (m *metrics) xdsEvent(e xdsclient.Event) {
	switch e.Kind {
	case "connected":
		m.connected.Set(1)
	case "disconnected":
		m.connected.Set(0)
	case "ack":
		m.acks.WithLabelValues(e.TypeURL).Inc()
	case "nack":
		m.nacks.WithLabelValues(e.TypeURL).Inc()
	}
}
