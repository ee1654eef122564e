package xds

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/internal/offstack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// The server speaks state-of-the-world ADS itself, as Istio's and Linkerd's
// control planes do, rather than through go-control-plane's server and
// snapshot cache. Per stream, that library runs a second goroutine to read
// requests beside the one that sends, keeps every type's last request,
// and indexes each proxy's snapshot by name; with thousands of proxies
// those were a fifth of the control plane's memory. Here a stream's one
// goroutine reads its requests and answers them; a push is sent by a
// goroutine that lives only while it sends, and the server keeps, per
// stream and type, the names asked for and the last version and nonce sent.

// pushOrder is the order in which a flush sends the types that changed:
// what is referenced before what references it (clusters and secrets
// before the listeners that use them, listeners before their routes), as
// Envoy's xDS documentation recommends so that no update dangles.
var pushOrder = [...]string{resource.ClusterType, resource.EndpointType, resource.SecretType, resource.ListenerType, resource.RouteType}

// stream is one ADS stream. Its handler goroutine reads requests and sets
// node, nodeID and the subscriptions; responses go out one flush at a time,
// from the handler (answering a request) or from a short-lived goroutine
// (pushing a change).
type stream struct {
	id   int64
	ads  grpc.BidiStreamingServer[discoverypb.DiscoveryRequest, discoverypb.DiscoveryResponse]
	peer spiffe.ID
	// node is nil until the first request names and authenticates it.
	// Only the handler goroutine writes it, before any flush can run.
	node *node
	// claimedID is the node id the first request carried; node.id differs
	// for a proxyless node (see streamNode).
	claimedID string

	mu sync.Mutex // guards what follows
	// subs holds the stream's subscriptions, by type URL.
	subs map[string]*subscription
	// nonces counts the responses sent; each response's nonce is its number.
	nonces uint64
	// flushing is set while a flush runs; dirty asks it to run again.
	flushing, dirty bool
}

// subscription is what a stream asked for of one type, and what it was sent.
type subscription struct {
	// wildcard asks for every resource of the type; otherwise names, sorted.
	wildcard bool
	names    []string
	// version is the version the proxy holds as far as the server knows:
	// the one its first request of the type carried, then that of the last
	// response, which a NACK leaves in place so that the rejected
	// configuration is not sent again; the next change is.
	version string
	// nonce is that of the last response of the type: a request answering
	// an older one is stale.
	nonce string
	// force sends the type on the next flush even if its version did not
	// change: the proxy asked for names it did not ask for before.
	force bool
}

// streamIDs numbers the streams of all servers.
var streamIDs atomic.Int64

// ads is the Aggregated Discovery Service, served by a Server.
type ads struct {
	discoverypb.UnimplementedAggregatedDiscoveryServiceServer
	s *Server
}

// StreamAggregatedResources serves one proxy's state-of-the-world stream:
// only a verified client certificate carrying a SPIFFE ID opens one.
func (a ads) StreamAggregatedResources(srv grpc.BidiStreamingServer[discoverypb.DiscoveryRequest, discoverypb.DiscoveryResponse]) error {
	s := a.s
	who, err := peerIdentity(srv.Context())
	if err != nil {
		s.log.Warn("xds: refused stream", "err", err)
		return status.Error(codes.Unauthenticated, "xds: "+err.Error())
	}
	st := &stream{id: streamIDs.Add(1), ads: srv, peer: who, subs: map[string]*subscription{}}
	defer s.closeStream(st)
	for {
		req, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		// Translation and marshalling run deep; the stream's goroutine
		// parks in Recv for the proxy's life and must not keep that depth.
		if err := offstack.Do(func() error { return s.request(st, req) }); err != nil {
			return err
		}
	}
}

// DeltaAggregatedResources refuses incremental xDS: the mesh's proxies and
// proxyless clients speak state of the world.
func (ads) DeltaAggregatedResources(grpc.BidiStreamingServer[discoverypb.DeltaDiscoveryRequest, discoverypb.DeltaDiscoveryResponse]) error {
	return status.Error(codes.Unimplemented, "xds: incremental (delta) xDS is not served; use state-of-the-world ADS")
}

// request handles one request of st: it attaches the stream to its node on
// the first, records ACKs and NACKs, and answers what needs an answer.
func (s *Server) request(st *stream, req *discoverypb.DiscoveryRequest) error {
	if st.node == nil {
		st.claimedID = req.GetNode().GetId()
		if err := s.attach(st, streamNode(req.GetNode(), st.id)); err != nil {
			return err
		}
	} else if req.Node != nil && req.Node.GetId() != st.claimedID {
		// Later requests may carry the node again (Envoy sends it every
		// time unless set_node_on_first_message_only); it may not change.
		return status.Errorf(codes.InvalidArgument, "xds: node id changed on the stream from %q to %q", st.claimedID, req.Node.GetId())
	}
	typeURL := req.GetTypeUrl()
	if typeURL == "" {
		return status.Error(codes.InvalidArgument, "xds: request without a type_url; ADS requests must name their type")
	}

	nonce := req.GetResponseNonce()
	st.mu.Lock()
	sub := st.subs[typeURL]
	if sub != nil && nonce != "" && nonce != sub.nonce {
		// It answers a response that a newer one of its type replaced; the
		// proxy answers that one too, with its names as they are then.
		st.mu.Unlock()
		return nil
	}
	first := sub == nil
	if first && !slices.Contains(pushOrder[:], typeURL) {
		s.log.Warn("xds: proxy asked for a type this server does not serve", "node", st.node.id, "type", typeURL)
	}
	if first {
		// The version the proxy holds: one from a stream to another replica
		// (versions are content hashes, the same on every replica) is not
		// sent again, so a failover costs no push storm.
		sub = &subscription{version: req.GetVersionInfo()}
		st.subs[typeURL] = sub
	}
	sub.update(req.GetResourceNames(), first)
	rejected := sub.version
	st.mu.Unlock()
	// The names are in place before a proxyless node's snapshot follows
	// them, so that the flush its push starts sends what they name.
	if err := s.subscribe(st, req); err != nil {
		return err
	}

	switch d := req.GetErrorDetail(); {
	case d != nil:
		s.nacked(st, typeURL, rejected, nonce != "", d.GetMessage())
	case nonce != "":
		st.node.acked(typeURL, req.GetVersionInfo())
	}
	return s.kick(st, true)
}

// update sets the names of a request, as the xDS protocol reads them. A
// type's first request with no names is a legacy wildcard, and the
// wildcard stays while later requests carry no names (Envoy's listeners
// and clusters); once names were asked for, no names asks for none; "*"
// asks for every resource beside any names. A request that asks for more
// than the last forces a response; one that asks for less needs none: the
// proxy drops what it no longer wants.
func (sub *subscription) update(names []string, first bool) {
	wildcard := slices.Contains(names, "*") || (len(names) == 0 && (first || sub.wildcard))
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	sorted = slices.Compact(slices.DeleteFunc(sorted, func(n string) bool { return n == "*" }))
	// A first request is answered unless the proxy holds the version
	// already: with that version, it holds what it names.
	grew := !first && !sub.wildcard && (wildcard || !isSubset(sorted, sub.names))
	sub.force = sub.force || grew
	sub.wildcard, sub.names = wildcard, sorted
}

// isSubset reports whether every name of a is in b; both are sorted.
func isSubset(a, b []string) bool {
	for _, n := range a {
		if _, found := slices.BinarySearch(b, n); !found {
			return false
		}
	}
	return true
}

// wants reports whether the subscription asks for anything at all.
func (sub *subscription) wants() bool { return sub.wildcard || len(sub.names) > 0 }

// nacked records that st's proxy rejected the last response of typeURL,
// whose version was rejected (known only if the NACK carried its nonce).
func (s *Server) nacked(st *stream, typeURL, rejected string, known bool, message string) {
	if !known {
		rejected = ""
	}
	s.metrics.nacks.WithLabelValues(typeLabel(typeURL)).Inc()
	s.log.Warn("xds: proxy rejected configuration", "node", st.node.id, "type", typeURL,
		"version", rejected, "message", message)
	st.node.mu.Lock()
	st.node.status.LastNACK = &NACK{TypeURL: typeURL, Version: rejected, Message: message, At: time.Now()}
	st.node.mu.Unlock()
}

// kick makes st send what its subscriptions lack of its node's snapshot.
// If a flush is running, that flush runs once more instead. Otherwise the
// flush runs here if inline (the handler answering a request: a proxy that
// does not read its responses then holds up its own stream alone), or in a
// goroutine of its own, which ends with the flush: a push never waits on a
// proxy. It returns the inline flush's error.
func (s *Server) kick(st *stream, inline bool) error {
	st.mu.Lock()
	if st.flushing || len(st.subs) == 0 {
		st.dirty = st.flushing
		st.mu.Unlock()
		return nil
	}
	st.flushing = true
	st.mu.Unlock()
	if inline {
		return s.flushLoop(st)
	}
	go func() {
		if err := s.flushLoop(st); err != nil {
			// The stream is ending: its handler's Recv fails too.
			s.log.Debug("xds: push not sent", "node", st.node.id, "err", err)
		}
	}()
	return nil
}

// flushLoop flushes st until no kick came in meanwhile.
func (s *Server) flushLoop(st *stream) error {
	for {
		err := s.flush(st)
		st.mu.Lock()
		again := st.dirty && err == nil
		st.dirty, st.flushing = false, again
		st.mu.Unlock()
		if !again {
			return err
		}
	}
}

// outgoing is one response a flush sends.
type outgoing struct {
	typeURL, version, nonce string
	items                   []types.Resource
	wildcard                bool
	names                   []string
}

// flush sends, in pushOrder, a response for every subscribed type whose
// version in the node's snapshot is not the one its proxy holds, or that
// asked to be sent anyway.
func (s *Server) flush(st *stream) error {
	snap := st.node.snap.Load()
	if snap == nil {
		return nil // not computed yet: the first push kicks the stream
	}
	var out []outgoing
	st.mu.Lock()
	for i, typeURL := range pushOrder {
		sub, ts := st.subs[typeURL], &snap[i]
		if sub == nil || !sub.wants() || (!sub.force && sub.version == ts.version) {
			continue
		}
		st.nonces++
		sub.version, sub.nonce, sub.force = ts.version, strconv.FormatUint(st.nonces, 10), false
		out = append(out, outgoing{typeURL: typeURL, version: ts.version, nonce: sub.nonce, items: ts.items, wildcard: sub.wildcard, names: sub.names})
	}
	st.mu.Unlock()
	for _, o := range out {
		resp, err := o.response()
		if err != nil {
			return status.Errorf(codes.Internal, "xds: %v", err)
		}
		if err := st.ads.Send(resp); err != nil {
			return err
		}
		s.metrics.pushes.WithLabelValues(typeLabel(o.typeURL)).Inc()
	}
	return nil
}

// response marshals o's resources, those named only unless o is a wildcard.
func (o outgoing) response() (*discoverypb.DiscoveryResponse, error) {
	resp := &discoverypb.DiscoveryResponse{VersionInfo: o.version, TypeUrl: o.typeURL, Nonce: o.nonce}
	resp.Resources = make([]*anypb.Any, 0, len(o.items))
	for _, r := range o.items {
		if !o.wildcard {
			if _, found := slices.BinarySearch(o.names, cache.GetResourceName(r)); !found {
				continue
			}
		}
		a, err := anypb.New(r)
		if err != nil {
			return nil, fmt.Errorf("marshal %s %q: %w", typeLabel(o.typeURL), cache.GetResourceName(r), err)
		}
		resp.Resources = append(resp.Resources, a)
	}
	return resp, nil
}

// snapshot is a node's configuration: per type of pushOrder, at its index,
// the resources sorted by name and their version. It is never modified
// once published.
type snapshot [len(pushOrder)]typeSnapshot

type typeSnapshot struct {
	version string
	items   []types.Resource
}

// of returns the resources of typeURL, or nil for a type no snapshot holds.
func (s *snapshot) of(typeURL string) *typeSnapshot {
	if i := slices.Index(pushOrder[:], typeURL); i >= 0 {
		return &s[i]
	}
	return nil
}

// publish makes snap n's configuration and kicks n's streams. The caller
// holds n.push.
func (s *Server) publish(n *node, snap *snapshot) {
	n.snap.Store(snap)
	n.mu.Lock()
	streams := slices.Clone(n.streams)
	n.mu.Unlock()
	for _, st := range streams {
		_ = s.kick(st, false) // a push's flush reports nothing back
	}
}

// closeStream forgets st and, with its node's last stream, the node and
// its snapshot.
func (s *Server) closeStream(st *stream) {
	n := st.node
	if n == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n.mu.Lock()
	n.streams = slices.DeleteFunc(n.streams, func(o *stream) bool { return o == st })
	left := len(n.streams)
	n.mu.Unlock()
	if left > 0 {
		return
	}
	delete(s.nodes, n.id)
	s.metrics.connected.Dec()
	// Under Server.mu, so that a new stream of the same node, which
	// attaches under it too, cannot see its snapshot cleared; under
	// n.push, so that no push in flight sets it again.
	n.push.Lock()
	n.closed = true
	n.snap.Store(nil)
	n.push.Unlock()
	s.log.Info("xds: proxy disconnected", "node", n.id)
}
