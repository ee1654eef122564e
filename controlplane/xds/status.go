package xds

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// NodeStatus is what the server knows of one connected proxy, for debugging.
type NodeStatus struct {
	// ID is the node.id: the proxy's workload ID.
	ID                 string
	Service, Namespace string
	ConnectedSince     time.Time
	// Streams counts the proxy's open ADS streams; more than one while a
	// reconnecting proxy's old stream is being reaped.
	Streams int
	// Versions is, per type URL, the version of the proxy's snapshot.
	Versions map[string]string
	// Acked is, per type URL, the version the proxy last accepted.
	Acked map[string]string
	// LastNACK is the proxy's last rejection of a response, if any.
	LastNACK *NACK
	// Error is why the proxy's configuration could not be computed, if it could not.
	Error string
}

// NACK is a response a proxy rejected.
type NACK struct {
	TypeURL string
	// Version is the rejected version, when the NACK names a response of this server.
	Version string
	// Message is the proxy's error_detail.
	Message string
	At      time.Time
}

// Nodes returns the status of every connected proxy, by ID.
func (s *Server) Nodes() []NodeStatus {
	s.mu.Lock()
	nodes := make([]*node, 0, len(s.nodes))
	streams := make(map[*node]int, len(s.nodes))
	for _, n := range s.nodes {
		nodes = append(nodes, n)
		streams[n] = len(n.streams)
	}
	s.mu.Unlock()

	out := make([]NodeStatus, 0, len(nodes))
	for _, n := range nodes {
		n.mu.Lock()
		st := n.status
		st.Versions = maps.Clone(st.Versions)
		st.Acked = maps.Clone(st.Acked)
		if st.LastNACK != nil {
			nack := *st.LastNACK
			st.LastNACK = &nack
		}
		n.mu.Unlock()
		st.Streams = streams[n]
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b NodeStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
