// Package lb is the proxy's load-balancer registry. A balancer turns a
// cluster's healthy endpoints into an immutable Picker; the cluster rebuilds
// the Picker whenever its endpoints change, and Pick runs on every request,
// concurrently and without blocking (the split grpc-go's balancer package
// makes between control and data path).
//
// Balancers register themselves by the name the runtime derives from a
// Cluster's lb_policy (ROUND_ROBIN is "round_robin", LEAST_REQUEST is
// "least_request", ...). A new balancer is a new folder under proxy/lb plus
// one import line in the runtime's list of balancers.
package lb

import (
	"errors"
	"fmt"
	"sort"
)

// ErrNoEndpoint is returned by Pick when the cluster has no healthy endpoint.
var ErrNoEndpoint = errors.New("lb: no healthy endpoint")

// Endpoint is one healthy upstream as a balancer sees it. Implementations
// may offer more (for example an ActiveRequests method for least-request
// balancing); balancers discover that with a type assertion.
type Endpoint interface {
	// Address is the endpoint's host:port.
	Address() string
}

// PickInfo is what a request offers a balancer. It is passed by value and
// must stay small.
type PickInfo struct {
	// Hash is the request's hash key for consistent-hash balancers; zero when
	// the route defines none.
	Hash uint64
}

// Picker chooses an endpoint for one request or connection. It is immutable
// and safe for concurrent use; Pick must not block.
type Picker interface {
	Pick(info PickInfo) (Endpoint, error)
}

// PickerFunc adapts a function to a Picker.
type PickerFunc func(info PickInfo) (Endpoint, error)

// Pick calls f.
func (f PickerFunc) Pick(info PickInfo) (Endpoint, error) { return f(info) }

// Builder makes a Picker over a cluster's healthy endpoints. The slice
// belongs to the Picker afterwards and is never modified.
type Builder interface {
	Build(endpoints []Endpoint) Picker
}

// BuilderFunc adapts a function to a Builder.
type BuilderFunc func(endpoints []Endpoint) Picker

// Build calls f.
func (f BuilderFunc) Build(endpoints []Endpoint) Picker { return f(endpoints) }

// empty is the Picker of a cluster without healthy endpoints.
var empty = PickerFunc(func(PickInfo) (Endpoint, error) { return nil, ErrNoEndpoint })

// Empty returns a Picker that always fails with ErrNoEndpoint.
func Empty() Picker { return empty }

var builders = map[string]Builder{}

// Register makes a balancer available under name. It must be called from an
// init function: the registry is not locked, as Get runs on the control
// path of every configuration update. Registering a name twice panics.
func Register(name string, b Builder) {
	if _, dup := builders[name]; dup {
		panic(fmt.Sprintf("lb: balancer %q registered twice", name))
	}
	builders[name] = b
}

// Get returns the balancer registered under name, or nil.
func Get(name string) Builder { return builders[name] }

// Names lists the registered balancers, sorted.
func Names() []string {
	names := make([]string, 0, len(builders))
	for n := range builders {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Config is the per-cluster tuning of a balancer, from the Cluster's
// least_request_lb_config or ring_hash_lb_config. Zero fields take the
// balancer's defaults.
type Config struct {
	// ChoiceCount is how many endpoints least_request samples per Pick.
	ChoiceCount int
	// MinRingSize and MaxRingSize bound the size of ring_hash's ring.
	MinRingSize, MaxRingSize uint64
}

// Configurable is a Builder that takes a cluster's Config.
type Configurable interface {
	Builder
	// WithConfig returns a Builder using cfg, or an error naming the bad value.
	WithConfig(cfg Config) (Builder, error)
}
