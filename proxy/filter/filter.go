// Package filter is the registry of HTTP filters: the steps a connection
// manager runs on a request's headers before its router, as Envoy's
// http_filters. Each filter lives in its own folder and registers itself in
// init; the runtime imports the folders it links in.
package filter

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// HTTP is one configured filter of a connection manager. DecodeHeaders runs
// once per request, before routing to the upstream; s is what the
// connection manager knows of the request beyond its headers, shared by
// every filter of the chain; perRoute is the route's config for this filter
// (from typed_per_filter_config, as built by the factory's PerRoute), or
// nil. It must be safe for concurrent use.
type HTTP interface {
	DecodeHeaders(r *http.Request, s *Stream, perRoute any) Decision
}

// HTTPFunc adapts a function to HTTP.
type HTTPFunc func(r *http.Request, s *Stream, perRoute any) Decision

// DecodeHeaders calls f.
func (f HTTPFunc) DecodeHeaders(r *http.Request, s *Stream, perRoute any) Decision {
	return f(r, s, perRoute)
}

// Stream is one request's state beyond its headers, as Envoy's StreamInfo:
// who sent it and what earlier filters learnt of it. The connection manager
// makes one per request that has filters to run; filters of one chain run
// in order on one goroutine, so a Stream needs no lock.
type Stream struct {
	// TLS is the downstream connection's state; nil over plaintext.
	TLS *tls.ConnectionState
	// Route is the name of the route the request matched ("" if unnamed).
	Route string

	peerID     string
	peerIDDone bool
	metadata   map[string]any
}

// PeerID returns the SPIFFE ID (the first URI SAN) of the downstream's
// verified client certificate, or "" when the connection is plaintext or
// presented none. The handshake has verified the chain; PeerID only reads
// it.
func (s *Stream) PeerID() string {
	if s.peerIDDone {
		return s.peerID
	}
	s.peerIDDone = true
	if s.TLS == nil || len(s.TLS.PeerCertificates) == 0 {
		return ""
	}
	if uris := s.TLS.PeerCertificates[0].URIs; len(uris) > 0 {
		s.peerID = uris[0].String()
	}
	return s.peerID
}

// SetMetadata records v under key for the filters after this one (Envoy's
// dynamic metadata), e.g. the JWT filter's verified claims under its own
// filter name.
func (s *Stream) SetMetadata(key string, v any) {
	if s.metadata == nil {
		s.metadata = map[string]any{}
	}
	s.metadata[key] = v
}

// Metadata returns what an earlier filter recorded under key.
func (s *Stream) Metadata(key string) (any, bool) {
	v, ok := s.metadata[key]
	return v, ok
}

// Decision is what a filter makes of a request. The zero value continues at
// once.
type Decision struct {
	// Delay holds the request this long before it goes on (or before the
	// reply is sent).
	Delay time.Duration
	// Reply, when set, answers the request locally and stops the chain.
	Reply *Reply
}

// Continue is the decision to let a request through unchanged.
var Continue = Decision{}

// Reply is a locally generated response.
type Reply struct {
	Status int
	// GRPCStatus, when Status is 200 and the reply is for gRPC, is sent as
	// a trailers-only response's grpc-status.
	GRPCStatus *int
	Body       string
	// Reason goes into the x-weft-error header and the proxy's log.
	Reason string
	// Header holds extra response headers, e.g. weft-denied-by,
	// retry-after or www-authenticate.
	Header http.Header
}

// Env is what the proxy offers filters when it builds them.
type Env struct {
	// Log is the proxy's logger, never nil.
	Log *slog.Logger
	// ControlPlane is the proxy's connection to the control plane (mutual
	// TLS with its SVID), for filters that call a service it serves, such
	// as the global rate limit service; nil when the proxy has none.
	ControlPlane grpc.ClientConnInterface
	// Metadata is the filter chain's filter_metadata under the filter's
	// name, or nil: settings Envoy keeps outside the filter's config, such
	// as the roots of the JWT filter's key set servers
	// (xdsmeta.JWKSCAKey).
	Metadata *structpb.Struct
}

// Factory builds a filter from its typed_config.
type Factory struct {
	// Name is the filter's canonical name, e.g. "envoy.filters.http.fault".
	Name string
	// Config is an empty message of the filter's typed_config type.
	Config proto.Message
	// New builds the filter from its listener-level config.
	New func(cfg proto.Message, env Env) (HTTP, error)
	// PerRoute compiles a route's typed_per_filter_config for the filter;
	// nil when the filter has no per-route config.
	PerRoute func(cfg proto.Message) (any, error)
}

var (
	mu        sync.RWMutex
	byConfig  = map[protoreflect.FullName]*Factory{}
	factories []*Factory
)

// Register adds a filter factory; registering a config type twice panics.
func Register(f Factory) {
	mu.Lock()
	defer mu.Unlock()
	name := f.Config.ProtoReflect().Descriptor().FullName()
	if _, dup := byConfig[name]; dup {
		panic(fmt.Sprintf("filter: %s registered twice", name))
	}
	byConfig[name] = &f
	factories = append(factories, &f)
	sort.Slice(factories, func(i, j int) bool { return factories[i].Name < factories[j].Name })
}

// ByConfig returns the factory whose typed_config type is name.
func ByConfig(name protoreflect.FullName) (*Factory, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := byConfig[name]
	return f, ok
}

// All returns the registered factories by name.
func All() []*Factory {
	mu.RLock()
	defer mu.RUnlock()
	return append([]*Factory(nil), factories...)
}
