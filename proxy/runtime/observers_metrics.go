package runtime

import "github.com/weftmesh/weft/proxy/observe"

// metricsObserver records a listener's requests in the proxy's metrics.
func (b *builder) metricsObserver(direction string) (observe.Observer, error) { return nil, nil }

// metricsConnObserver records a listener's TCP connections in the proxy's metrics.
func (b *builder) metricsConnObserver(direction string) observe.ConnObserver { return nil }
