package xds

import (
	"errors"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connected    prometheus.Gauge
	pushes       *prometheus.CounterVec
	pushDuration prometheus.Histogram
	nacks        *prometheus.CounterVec
	recomputed   prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	return &metrics{
		connected: register(r, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_xds_connected_proxies",
			Help: "Proxies with at least one open ADS stream.",
		})),
		pushes: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_xds_pushes_total",
			Help: "xDS responses sent to proxies, by type (lds, rds, cds, eds, sds).",
		}, []string{"type"})),
		pushDuration: register(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weft_xds_push_duration_seconds",
			Help:    "Time to translate one proxy's configuration and, if it changed, set its snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 100µs to ~26s
		})),
		nacks: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_xds_nacks_total",
			Help: "xDS responses proxies rejected, by type (lds, rds, cds, eds, sds).",
		}, []string{"type"})),
		recomputed: register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_xds_recomputed_proxies_total",
			Help: "Proxy configurations recomputed after a change of the mesh (those that read nothing that changed are skipped).",
		})),
	}
}

// register registers c with r, or returns the equal collector r already
// holds, so that several servers can share a registry.
func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if r == nil {
		return c
	}
	if err := r.Register(c); err != nil {
		var dup prometheus.AlreadyRegisteredError
		if errors.As(err, &dup) {
			if existing, ok := dup.ExistingCollector.(C); ok {
				return existing
			}
		}
		// Only a programming error, such as two metrics of one name and
		// different labels, gets here.
		panic(fmt.Sprintf("xds: register metric: %v", err))
	}
	return c
}

// typeLabel is the short xDS name of a type URL, as metrics label it.
func typeLabel(typeURL string) string {
	switch typeURL {
	case resource.ListenerType:
		return "lds"
	case resource.RouteType:
		return "rds"
	case resource.ClusterType:
		return "cds"
	case resource.EndpointType:
		return "eds"
	case resource.SecretType:
		return "sds"
	}
	return "other"
}
