package runtime

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"

	"github.com/weftmesh/weft/proxy/observe"
)

// accessLogObserver compiles a connection manager's access_log.
func (b *builder) accessLogObserver(logs []*accesslogv3.AccessLog, direction, path string) (observe.Observer, error) {
	return nil, nil
}

// accessLogConnObserver compiles a TCP proxy's access_log.
func (b *builder) accessLogConnObserver(logs []*accesslogv3.AccessLog, direction, path string) (observe.ConnObserver, error) {
	return nil, nil
}
