package xds

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// stream is one ADS stream. go-control-plane calls every callback of a
// stream from that stream's goroutine, so its fields need no lock of their
// own; Server.mu guards the map that holds it.
type stream struct {
	peer spiffe.ID
	// node is nil until the first request names and authenticates it.
	node *node
	// nodeProto is the node of that first request, slimmed once decoded
	// (see slim). Later requests may carry the node again (Envoy sends it
	// every time unless set_node_on_first_message_only); they are made to
	// share this one, because the cache keeps every stream's last request
	// of each type.
	nodeProto *corev3.Node
	// sent is the last response per type URL, to tell which version a NACK rejects.
	sent map[string]response
	// claimedID is the node id the first request carried; nodeProto's id
	// differs for a proxyless node (see streamNode).
	claimedID string
}

type response struct{ version, nonce string }

// node is one proxy, known by its node.id. It usually has one stream; a
// second one appears when a proxy reconnects before the old stream is
// reaped, and the node lives until its last stream ends.
type node struct {
	id    string
	since time.Time
	// streams counts the node's streams; Server.mu guards it.
	streams int

	// push serialises translation and SetSnapshot for the node, and guards
	// the fields below it.
	push   sync.Mutex
	meta   xdsmeta.Node
	closed bool
	// versions are those of the snapshot in the cache, per type URL.
	versions map[string]string
	// held are the shared resource sets of that snapshot, per type URL.
	held map[string]*typeSet
	// in is the input the snapshot was computed from, or one that differs
	// from it only in what the node does not read.
	in *translate.Input
	// requested holds, per type URL, the sorted names a proxyless node's
	// stream asks for: its snapshot holds those alone (see subscribe).
	requested map[string][]string

	mu     sync.Mutex // guards status
	status NodeStatus
}

func (s *Server) callbacks() server.Callbacks {
	return server.CallbackFuncs{
		StreamOpenFunc:     s.onStreamOpen,
		StreamClosedFunc:   s.onStreamClosed,
		StreamRequestFunc:  s.onStreamRequest,
		StreamResponseFunc: s.onStreamResponse,
		DeltaStreamOpenFunc: func(context.Context, int64, string) error {
			return status.Error(codes.Unimplemented, "xds: incremental (delta) xDS is not served; use state-of-the-world ADS")
		},
		FetchRequestFunc: func(context.Context, *discoverypb.DiscoveryRequest) error {
			return status.Error(codes.Unimplemented, "xds: REST fetch is not served; use ADS")
		},
	}
}

// onStreamOpen authenticates the peer: only a verified client certificate
// carrying a SPIFFE ID opens a stream.
func (s *Server) onStreamOpen(ctx context.Context, id int64, _ string) error {
	who, err := peerIdentity(ctx)
	if err != nil {
		s.log.Warn("xds: refused stream", "err", err)
		return status.Error(codes.Unauthenticated, "xds: "+err.Error())
	}
	s.mu.Lock()
	s.streams[id] = &stream{peer: who, sent: map[string]response{}}
	s.mu.Unlock()
	return nil
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

// onStreamRequest attaches the stream to its node on the first request,
// then records ACKs and NACKs.
func (s *Server) onStreamRequest(id int64, req *discoverypb.DiscoveryRequest) error {
	s.mu.Lock()
	st := s.streams[id]
	s.mu.Unlock()
	if st == nil {
		return status.Errorf(codes.Internal, "xds: stream %d was not opened", id)
	}
	if st.node == nil {
		st.claimedID = req.GetNode().GetId()
		node := streamNode(req.GetNode(), id)
		if err := s.attach(st, node); err != nil {
			return err
		}
		slim(req.Node)
		slim(node)
		st.nodeProto = node
		req.Node = node
		return s.subscribe(st, req)
	}
	if got := req.GetNode().GetId(); got != st.claimedID {
		return status.Errorf(codes.InvalidArgument, "xds: node id changed on the stream from %q to %q", st.claimedID, got)
	}
	if req.Node != st.nodeProto { // a node the request carried: not shared yet
		slim(req.Node)
	}
	req.Node = st.nodeProto
	s.observe(st, req)
	return s.subscribe(st, req)
}

// slim drops, in place, all of p but its id and cluster, which are what the
// cache and the stream's checks read once attach has decoded the node.
// go-control-plane keeps the last node each stream sent, and the metadata
// is most of it: two decoded copies per proxy, before.
func slim(p *corev3.Node) {
	if p == nil {
		return
	}
	id, cluster := p.GetId(), p.GetCluster()
	proto.Reset(p)
	p.Id, p.Cluster = id, cluster
}

// attach decodes and authorises the stream's node, then computes its
// snapshot before the request reaches the cache, so the first response
// goes out at once.
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
	n.streams++
	streams := n.streams
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
// cache keys snapshots by node id, so the id must be one of the peer's own.
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

// observe records what a request says about the last response of its type.
func (s *Server) observe(st *stream, req *discoverypb.DiscoveryRequest) {
	typeURL := req.GetTypeUrl()
	if d := req.GetErrorDetail(); d != nil {
		var rejected string
		if last, ok := st.sent[typeURL]; ok && last.nonce == req.GetResponseNonce() {
			rejected = last.version
			// The cache answers any request whose version differs from the
			// snapshot's, which would send the rejected configuration right
			// back, again and again. Treat the request as standing on the
			// rejected version: the next response is the next change.
			req.VersionInfo = rejected
		}
		s.metrics.nacks.WithLabelValues(typeLabel(typeURL)).Inc()
		s.log.Warn("xds: proxy rejected configuration", "node", st.node.id, "type", typeURL,
			"version", rejected, "message", d.GetMessage())
		st.node.mu.Lock()
		st.node.status.LastNACK = &NACK{TypeURL: typeURL, Version: rejected, Message: d.GetMessage(), At: time.Now()}
		st.node.mu.Unlock()
		return
	}
	if req.GetResponseNonce() != "" {
		st.node.mu.Lock()
		if st.node.status.Acked == nil {
			st.node.status.Acked = map[string]string{}
		}
		st.node.status.Acked[typeURL] = req.GetVersionInfo()
		st.node.mu.Unlock()
	}
}

func (s *Server) onStreamResponse(_ context.Context, id int64, _ *discoverypb.DiscoveryRequest, resp *discoverypb.DiscoveryResponse) {
	s.mu.Lock()
	st := s.streams[id]
	s.mu.Unlock()
	if st != nil {
		st.sent[resp.GetTypeUrl()] = response{version: resp.GetVersionInfo(), nonce: resp.GetNonce()}
	}
	s.metrics.pushes.WithLabelValues(typeLabel(resp.GetTypeUrl())).Inc()
}

// onStreamClosed forgets the stream and, with its node's last stream, the
// node and its snapshot.
func (s *Server) onStreamClosed(id int64, _ *corev3.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[id]
	delete(s.streams, id)
	if st == nil || st.node == nil {
		return
	}
	n := st.node
	if n.streams--; n.streams > 0 {
		return
	}
	delete(s.nodes, n.id)
	s.metrics.connected.Dec()
	// Under Server.mu, so that a new stream of the same node, which
	// attaches under it too, cannot see its snapshot cleared; under
	// n.push, so that no push in flight sets it again.
	n.push.Lock()
	n.closed = true
	s.cache.ClearSnapshot(n.id)
	s.releaseSets(n.held)
	n.held = nil
	n.push.Unlock()
	s.log.Info("xds: proxy disconnected", "node", n.id)
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
