package runtime

import "github.com/weftmesh/weft/proxy/observe"

// metricsObserver records a listener's requests in the proxy's metrics.
// Every listener has one; its labels come from the record, so one observer
// serves every direction.
func (b *builder) metricsObserver(direction string) (observe.Observer, error) {
	return b.rt.metrics.HTTPObserver(), nil
}

// metricsConnObserver records a listener's TCP connections in the proxy's metrics.
func (b *builder) metricsConnObserver(direction string) observe.ConnObserver {
	return b.rt.metrics.ConnObserver()
}
