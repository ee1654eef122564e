package xds

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// node is one proxy, known by its node.id. It usually has one stream; a
// second one appears when a proxy reconnects before the old stream is
// reaped, and the node lives until its last stream ends.
type node struct {
	id    string
	since time.Time
	// streams are the node's open streams; they change under Server.mu
	// and mu both, so that holding either is enough to read them.
	streams []*stream
	// snap is the node's configuration, nil until its first push and after
	// its last stream closed.
	snap atomic.Pointer[snapshot]

	// push serialises translation and publishing for the node, and guards
	// the fields below it.
	push   sync.Mutex
	meta   xdsmeta.Node
	closed bool
	// in is the input the snapshot was computed from, or one that differs
	// from it only in what the node does not read.
	in *translate.Input
	// requested holds, per type URL, the sorted names a proxyless node's
	// stream asks for: its snapshot holds those alone (see subscribe).
	requested map[string][]string

	// mu guards status, and streams with Server.mu. It is taken last,
	// after Server.mu and push.
	mu     sync.Mutex
	status NodeStatus
}

func peerIdentity(ctx context.Context) (spiffe.ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffe.ID{}, errors.New("no peer on the stream")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return spiffe.ID{}, errors.New("connection is not TLS")
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return spiffe.ID{}, errors.New("no verified client certificate")
	}
	id, err := spiffe.FromCert(chains[0][0])
	if err != nil {
		return spiffe.ID{}, fmt.Errorf("client certificate: %w", err)
	}
	return id, nil
}

// attach decodes and authorises the stream's node, then computes its
// snapshot before the request is answered, so the first response goes out
// at once.
func (s *Server) attach(st *stream, p *corev3.Node) error {
	meta, err := xdsmeta.NodeFromProto(p)
	if err != nil {
		return status.Error(codes.InvalidArgument, "xds: "+err.Error())
	}
	if err := s.authorize(st.peer, meta); err != nil {
		s.log.Warn("xds: refused node", "node", meta.ID, "peer", st.peer.String(), "err", err)
		return status.Error(codes.PermissionDenied, "xds: "+err.Error())
	}

	s.mu.Lock()
	n := s.nodes[meta.ID]
	if n == nil {
		n = &node{id: meta.ID, since: time.Now()}
		n.status = NodeStatus{ID: meta.ID, Service: meta.Service, Namespace: meta.Namespace, ConnectedSince: n.since}
		s.nodes[meta.ID] = n
		s.metrics.connected.Inc()
	}
	n.mu.Lock()
	n.streams = append(n.streams, st)
	streams := len(n.streams)
	n.mu.Unlock()
	st.node = n
	s.mu.Unlock()
	s.log.Info("xds: proxy connected", "node", meta.ID, "peer", st.peer.String(), "streams", streams)

	// A reconnecting proxy may come back with other upstreams: the newest
	// stream's node metadata wins.
	n.push.Lock()
	n.meta = meta
	n.push.Unlock()
	if err := s.push(n); err != nil {
		return status.Error(codes.InvalidArgument, "xds: "+err.Error())
	}
	return nil
}

// authorize checks that a node is the workload its certificate names: the
// server keys snapshots by node id, so the id must be one of the peer's own.
func (s *Server) authorize(peer spiffe.ID, n xdsmeta.Node) error {
	claimed := xdsmeta.ServiceHost(n.Service, n.Namespace)
	if peer.Service != n.Service || peer.Namespace != n.Namespace {
		return fmt.Errorf("node %q claims service %s, but its certificate %s is for service %s",
			n.ID, claimed, peer, xdsmeta.ServiceHost(peer.Service, peer.Namespace))
	}
	if !strings.HasPrefix(n.ID, claimed+"@") {
		return fmt.Errorf("node id %q is not a workload of %s (want %s@<inbound address>)", n.ID, claimed, claimed)
	}
	if in := s.input.Load(); in != nil && peer.TrustDomain != in.TrustDomain {
		return fmt.Errorf("certificate %s is not of trust domain %q", peer, in.TrustDomain)
	}
	return nil
}

// version returns the version of typeURL in the node's snapshot, "" if it
// has none.
func (n *node) version(typeURL string) string {
	if snap := n.snap.Load(); snap != nil {
		if ts := snap.of(typeURL); ts != nil {
			return ts.version
		}
	}
	return ""
}

// acked records that the node's proxy accepted version of typeURL.
func (n *node) acked(typeURL, version string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.status.Acked == nil {
		n.status.Acked = map[string]string{}
	}
	n.status.Acked[typeURL] = version
}

func (n *node) setVersions(v map[string]string) {
	n.mu.Lock()
	n.status.Versions = v
	n.mu.Unlock()
}

func (n *node) setError(err error) {
	n.mu.Lock()
	n.status.Error = ""
	if err != nil {
		n.status.Error = err.Error()
	}
	n.mu.Unlock()
}
