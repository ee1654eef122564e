package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Proxyless gRPC nodes differ from proxies in two ways that matter here.
//
// They ask for resources by name (the targets the application dials, then
// what those reference) and never by wildcard. So a proxyless node's
// snapshot holds, of what translation gives it, only the names its stream
// asks for now, and each type's version covers those names: a request
// naming other resources recomputes the snapshot before it is answered,
// with the new set, whether it grew or shrank.
//
// And every process started from one bootstrap file carries the same node
// id, each asking for its own names. So each proxyless stream is a node of
// its own, known by the node id and the stream's number.

// streamNode is the node a stream is served as.
func streamNode(p *corev3.Node, streamID int64) *corev3.Node {
	if !xdsmeta.IsProxyless(p) {
		return p
	}
	c := proto.Clone(p).(*corev3.Node)
	c.Id = fmt.Sprintf("%s#%d", p.GetId(), streamID)
	return c
}

// subscribe records the names a proxyless node's request asks for and, when
// they changed, recomputes the node's snapshot before the request is
// answered. For a proxy it does nothing.
func (s *Server) subscribe(st *stream, req *discoverypb.DiscoveryRequest) error {
	n := st.node
	names := slices.Clone(req.GetResourceNames())
	slices.Sort(names)
	names = slices.Compact(names)
	n.push.Lock()
	changed := n.meta.Proxyless && !slices.Equal(n.requested[req.GetTypeUrl()], names)
	if changed {
		if n.requested == nil {
			n.requested = map[string][]string{}
		}
		n.requested[req.GetTypeUrl()] = names
	}
	n.push.Unlock()
	if !changed {
		return nil
	}
	if err := s.push(n); err != nil {
		return status.Error(codes.InvalidArgument, "xds: "+err.Error())
	}
	return nil
}

// requestedOnly keeps, of each type of res, the resources requested names.
// The version of a type is that of all its resources and of the names: a
// proxyless node that asks for one name more or less gets a new version,
// so its stream is sent the new set.
func requestedOnly(res *translate.Resources, requested map[string][]string) (map[resource.Type][]types.Resource, func(resource.Type) string) {
	byType := res.ByType()
	versions := make(map[resource.Type]string, len(byType))
	for typeURL, items := range byType {
		names := requested[typeURL]
		byType[typeURL] = slices.DeleteFunc(slices.Clone(items), func(r types.Resource) bool {
			_, found := slices.BinarySearch(names, cache.GetResourceName(r))
			return !found
		})
		h := sha256.New()
		h.Write([]byte(res.Version(typeURL)))
		for _, name := range names {
			h.Write([]byte{0})
			h.Write([]byte(name))
		}
		versions[typeURL] = hex.EncodeToString(h.Sum(nil)[:8])
	}
	return byType, func(typeURL resource.Type) string { return versions[typeURL] }
}
