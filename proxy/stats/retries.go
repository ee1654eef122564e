package stats

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Retries counts request retries by cluster.
type Retries struct {
	vec *prometheus.CounterVec
	// counters caches each cluster's handle, so a retry does not hash labels.
	counters sync.Map // cluster name -> prometheus.Counter
}

var (
	retriesMu  sync.Mutex
	retriesFor = map[prometheus.Registerer]*Retries{}
)

// RetriesOn returns the retry counters registered on reg, creating them on
// first use; a nil reg keeps them private. Every call with the same reg
// returns the same Retries.
func RetriesOn(reg prometheus.Registerer) *Retries {
	retriesMu.Lock()
	defer retriesMu.Unlock()
	if r, ok := retriesFor[reg]; ok {
		return r
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_retries_total",
		Help: "Request retries sent, by cluster and its destination service.",
	}, []string{"cluster", "destination_service", "destination_namespace"})
	if reg != nil {
		vec = register(reg, vec)
	}
	r := &Retries{vec: vec}
	retriesFor[reg] = r
	return r
}

// Retry counts one retry to cluster. A nil Retries counts nothing.
func (r *Retries) Retry(cluster string) {
	if r == nil {
		return
	}
	c, ok := r.counters.Load(cluster)
	if !ok {
		svc, ns := ClusterService(cluster)
		c, _ = r.counters.LoadOrStore(cluster, r.vec.WithLabelValues(cluster, svc, ns))
	}
	c.(prometheus.Counter).Inc()
}

// Forget drops the series of a cluster that is no longer configured.
func (r *Retries) Forget(cluster string) {
	r.counters.Delete(cluster)
	r.vec.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
}
