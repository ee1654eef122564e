package runtime

import (
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/proxy/observe"
)

// httpObservers builds what watches a connection manager's requests, in
// order: metrics, tap, access logs, tracing. Each kind compiles its own part
// of the HttpConnectionManager in its own file.
func (b *builder) httpObservers(h *hcmv3.HttpConnectionManager, direction, path string) ([]observe.Observer, error) {
	var out []observe.Observer
	add := func(o observe.Observer, err error) error {
		if err != nil {
			return err
		}
		if o != nil {
			out = append(out, o)
		}
		return nil
	}
	if err := add(b.metricsObserver(direction)); err != nil {
		return nil, err
	}
	if err := add(b.tapObserver(direction)); err != nil {
		return nil, err
	}
	if err := add(b.accessLogObserver(h.GetAccessLog(), direction, join(path, "access_log"))); err != nil {
		return nil, err
	}
	if err := add(b.tracingObserver(h.GetTracing(), direction, join(path, "tracing"))); err != nil {
		return nil, err
	}
	return out, nil
}

// tcpObservers builds what watches a TCP proxy's connections: metrics,
// access logs.
func (b *builder) tcpObservers(t *tcpproxyv3.TcpProxy, direction, path string) ([]observe.ConnObserver, error) {
	var out []observe.ConnObserver
	if o := b.metricsConnObserver(direction); o != nil {
		out = append(out, o)
	}
	o, err := b.accessLogConnObserver(t.GetAccessLog(), direction, join(path, "access_log"))
	if err != nil {
		return nil, err
	}
	if o != nil {
		out = append(out, o)
	}
	return out, nil
}
