package runtime

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"

	"github.com/weftmesh/weft/proxy/accesslog"
	"github.com/weftmesh/weft/proxy/observe"
)

// accessLogObserver compiles a connection manager's access_log; nil when
// it has none.
func (b *builder) accessLogObserver(logs []*accesslogv3.AccessLog, direction, path string) (observe.Observer, error) {
	if len(logs) == 0 {
		return nil, nil
	}
	loggers, err := accesslog.Compile(logs, b.rt.accessLogs, path)
	if err != nil {
		return nil, err
	}
	return accesslog.Observer(loggers), nil
}

// accessLogConnObserver compiles a TCP proxy's access_log; nil when it has none.
func (b *builder) accessLogConnObserver(logs []*accesslogv3.AccessLog, direction, path string) (observe.ConnObserver, error) {
	if len(logs) == 0 {
		return nil, nil
	}
	loggers, err := accesslog.Compile(logs, b.rt.accessLogs, path)
	if err != nil {
		return nil, err
	}
	return accesslog.ConnObserver(loggers), nil
}
