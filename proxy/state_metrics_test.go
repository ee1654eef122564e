package proxy

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/proxy/identity"
	"github.com/weftmesh/weft/proxy/xdsclient"
)

// gather returns each series of reg as "name{label=value,...}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=" + l.GetValue()
			}
			out[key+"}"] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

func TestHealthMetrics(t *testing.T) {
	id, err := identity.New(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, id)
	m.xdsEvent(xdsclient.Event{Kind: "connected"})
	const cluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	m.xdsEvent(xdsclient.Event{Kind: "ack", TypeURL: cluster, Version: "aaa"})
	m.xdsEvent(xdsclient.Event{Kind: "ack", TypeURL: cluster, Version: "bbb"})
	m.xdsEvent(xdsclient.Event{Kind: "nack", TypeURL: cluster, Version: "ccc"})

	got := gather(t, reg)
	for series, want := range map[string]float64{
		"weft_proxy_config_info{config_version=bbb,type=Cluster}": 1,
		"weft_proxy_xds_connected{}":                              1,
		"weft_proxy_xds_rejected_total{type=Cluster}":             1,
		"weft_proxy_xds_updates_total{type=Cluster}":              2,
		// No SVID yet.
		"weft_proxy_certificate_expiry_timestamp_seconds{}": 0,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	if _, stale := got["weft_proxy_config_info{config_version=aaa,type=Cluster}"]; stale {
		t.Error("the replaced config version is still exported")
	}
	builds := 0
	for series := range got {
		if len(series) > len("weft_proxy_build_info") && series[:len("weft_proxy_build_info")] == "weft_proxy_build_info" {
			builds++
		}
	}
	if builds != 1 {
		t.Errorf("%d build_info series, want 1", builds)
	}
	m.xdsEvent(xdsclient.Event{Kind: "disconnected"})
	if got := gather(t, reg)["weft_proxy_xds_connected{}"]; got != 0 {
		t.Errorf("connected = %v after a disconnect", got)
	}
}
