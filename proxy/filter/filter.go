// Package filter is the registry of HTTP filters: the steps a connection
// manager runs on a request's headers before its router, as Envoy's
// http_filters. Each filter lives in its own folder and registers itself in
// init; the runtime imports the folders it links in.
package filter

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// HTTP is one configured filter of a connection manager. DecodeHeaders runs
// once per request, before routing to the upstream; perRoute is the route's
// config for this filter (from typed_per_filter_config, as built by the
// factory's PerRoute), or nil. It must be safe for concurrent use.
type HTTP interface {
	DecodeHeaders(r *http.Request, perRoute any) Decision
}

// HTTPFunc adapts a function to HTTP.
type HTTPFunc func(r *http.Request, perRoute any) Decision

// DecodeHeaders calls f.
func (f HTTPFunc) DecodeHeaders(r *http.Request, perRoute any) Decision { return f(r, perRoute) }

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
	// Reason goes into the x-weft-error header.
	Reason string
}

// Factory builds a filter from its typed_config.
type Factory struct {
	// Name is the filter's canonical name, e.g. "envoy.filters.http.fault".
	Name string
	// Config is an empty message of the filter's typed_config type.
	Config proto.Message
	// New builds the filter from its listener-level config.
	New func(cfg proto.Message) (HTTP, error)
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
