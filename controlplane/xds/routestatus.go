package xds

import (
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/api/xdsmeta"
)

// routeTypes are the types whose versions tell whether a proxy applied a
// Route: the route configuration itself, and the listeners and clusters it
// relies on.
var routeTypes = []string{resource.RouteType, resource.ListenerType, resource.ClusterType}

// RouteStatus says how far the Route of one service has reached the
// connected proxies: want counts those that receive it (the proxies with
// the service among their upstreams, and those with an HTTP proxy port),
// applied those of them that accepted the versions last pushed to them,
// and nacks holds, for each of them that rejected one of those versions,
// the proxy's message.
//
// A NACK of an older version does not count: pushing a change to the Route
// (or anything else the proxy reads) gives it new versions, so a rejection
// counts only until the proxy has been sent something newer.
func (s *Server) RouteStatus(namespace, service string) (want, applied int, nacks []string) {
	s.mu.Lock()
	nodes := make([]*node, 0, len(s.nodes))
	for _, n := range s.nodes {
		nodes = append(nodes, n)
	}
	s.mu.Unlock()

	views := make([]routeView, 0, len(nodes))
	for _, n := range nodes {
		n.push.Lock()
		meta, closed := n.meta, n.closed
		n.push.Unlock()
		if closed {
			continue
		}
		n.mu.Lock()
		v := routeView{meta: meta, versions: n.status.Versions, acked: n.status.Acked}
		if n.status.LastNACK != nil {
			nack := *n.status.LastNACK
			v.nack = &nack
		}
		// Versions is replaced, never modified, on a push; Acked is modified
		// in place, so it is copied.
		v.acked = make(map[string]string, len(n.status.Acked))
		for k, a := range n.status.Acked {
			v.acked[k] = a
		}
		n.mu.Unlock()
		views = append(views, v)
	}
	return routeStatusOf(namespace, service, views)
}

// routeView is what RouteStatus reads of one proxy.
type routeView struct {
	meta            xdsmeta.Node
	versions, acked map[string]string
	nack            *NACK
}

// receives reports whether a proxy reads the Route of a service, as
// translation decides it (see changes.affect).
func (v routeView) receives(namespace, service string) bool {
	if v.meta.HTTPProxy != "" {
		return true
	}
	for _, u := range v.meta.Upstreams {
		if u.Service == service && u.Namespace == namespace {
			return true
		}
	}
	return false
}

func routeStatusOf(namespace, service string, views []routeView) (want, applied int, nacks []string) {
	for _, v := range views {
		if !v.receives(namespace, service) {
			continue
		}
		want++
		current := len(v.versions) > 0
		for _, t := range routeTypes {
			if v.versions[t] != v.acked[t] {
				current = false
			}
		}
		if current {
			applied++
			continue
		}
		if n := v.nack; n != nil && n.Version != "" && n.Version == v.versions[n.TypeURL] {
			nacks = append(nacks, n.Message)
		}
	}
	return want, applied, nacks
}
