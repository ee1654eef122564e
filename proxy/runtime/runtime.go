// Package runtime turns the xDS resources a proxy accepted into its running
// data plane. Apply validates a whole set of resources (every populated
// field must be one the proxy honours, so that an unsupported feature is a
// NACK naming its field rather than a silent difference from Envoy),
// compiles it into an immutable configuration, binds any new listener
// addresses, and only then swaps the configuration in with one atomic
// store. Requests in flight finish on the configuration they started with;
// the request path reads the configuration without locks.
package runtime

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/proxy/accesslog"
	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/hcm"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/stats"
	"github.com/weftmesh/weft/proxy/tap"
	"github.com/weftmesh/weft/proxy/tlsx"
)

// Resources is the full set of xDS resources the proxy has accepted, by name.
type Resources struct {
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	Secrets   map[string]*tlsv3.Secret
}

// clone copies the maps (not the messages, which are never modified), so
// that the caller may go on editing its own.
func (r *Resources) clone() Resources {
	if r == nil {
		return Resources{}
	}
	return Resources{
		Listeners: copyMap(r.Listeners), Routes: copyMap(r.Routes), Clusters: copyMap(r.Clusters),
		Endpoints: copyMap(r.Endpoints), Secrets: copyMap(r.Secrets),
	}
}

func copyMap[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// DefaultDrainTimeout is how long a listener removed by Apply waits for its
// connections before closing them.
const DefaultDrainTimeout = 30 * time.Second

// Options configure a Runtime.
type Options struct {
	// Identity is the proxy's SVID, presented by every TLS context that
	// names the SDS secret "default".
	Identity tlsx.Identity
	// Log defaults to discarding.
	Log *slog.Logger
	// Metrics receives the data plane's collectors; nil keeps them private.
	Metrics prometheus.Registerer
	// DrainTimeout bounds the drain of a listener removed by Apply; zero
	// means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// ControlPlane is the proxy's connection to the control plane, handed
	// to HTTP filters that call its services (filter.Env); nil for none.
	ControlPlane grpc.ClientConnInterface
	// Workload is this proxy's own workload (service, namespace, version;
	// ID its SPIFFE ID): the source of outbound requests and the
	// destination of inbound ones, as observers see them.
	Workload observe.Peer
}

// Runtime is the proxy's data plane.
type Runtime struct {
	opts    Options
	log     *slog.Logger
	metrics *stats.Metrics

	// cur is the configuration in service. Handshakes read trust bundles
	// from it; listeners hold the compiled parts they serve.
	cur atomic.Pointer[snapshot]

	// mu serialises Apply, Drain and Close.
	mu      sync.Mutex
	sockets map[string]*socket // by bindKey
	// retiring are sockets of removed listeners, draining in the background.
	retiring map[*socket]struct{}
	draining bool
	closed   bool
	// bg owns the goroutines that outlive a call: listener loops and the
	// drains of removed listeners.
	bg sync.WaitGroup

	// tap is where live taps subscribe (observers_tap.go).
	tap *tap.Hub
	// accessLogs are the open access log destinations (observers_accesslog.go).
	accessLogs *accesslog.Sinks
	// tracing owns the span exporters (observers_tracing.go).
	tracing tracingExporters
}

// New returns a Runtime with an empty configuration: no listener is bound
// until the first Apply.
func New(opts Options) *Runtime {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	r := &Runtime{
		opts:     opts,
		log:      opts.Log,
		metrics:  stats.New(opts.Metrics),
		sockets:  map[string]*socket{},
		retiring: map[*socket]struct{}{},
		tap:      tap.NewHub(opts.Metrics, ""),
	}
	r.accessLogs = accesslog.NewSinks(opts.Metrics, nil)
	r.cur.Store(emptySnapshot())
	return r
}

func emptySnapshot() *snapshot {
	return &snapshot{
		res:       (*Resources)(nil).clone(),
		listeners: map[string]*listenerConfig{},
		clusters:  map[string]*clusterState{},
		bundles:   map[string]*tlsx.TrustBundle{},
	}
}

// identity is the SVID source of TLS contexts; without one every handshake
// fails for want of a certificate.
func (r *Runtime) identity() tlsx.Identity {
	if r.opts.Identity != nil {
		return r.opts.Identity
	}
	return tlsx.IdentityFunc(func() *tls.Certificate { return nil })
}

// bundle returns a trust bundle of the configuration in service.
func (r *Runtime) bundle(name string) *tlsx.TrustBundle { return r.cur.Load().bundles[name] }

// ErrDraining is returned by Apply once the runtime drains or is closed.
var ErrDraining = errors.New("runtime: draining or closed")

// Apply validates the whole set and builds a new immutable config; on any
// error nothing changes and the error names the resource and the field path
// (it becomes the NACK's error_detail). On success the config is swapped in
// atomically and listeners are reconciled: new addresses are bound before
// the swap (a bind failure is an error with nothing applied), removed
// listeners close after it and drain their connections.
func (r *Runtime) Apply(res *Resources) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.draining || r.closed {
		return ErrDraining
	}
	applied := false
	defer func() { r.tracing.settle(applied) }()
	prev := r.cur.Load()
	next, err := r.build(res, prev)
	if err != nil {
		return err
	}
	bound, err := r.bind(next)
	if err != nil {
		return err
	}

	r.cur.Store(next)
	applied = true
	for _, s := range bound {
		r.sockets[s.key] = s
	}
	for _, lc := range next.listeners {
		r.sockets[lc.bindKey()].use(lc)
	}
	for _, s := range bound {
		s.start()
	}
	for key, s := range r.sockets {
		if lc := s.current.Load(); next.listeners[lc.name] != lc {
			delete(r.sockets, key)
			r.retire(s)
		}
	}
	for name, st := range prev.clusters {
		cur, ok := next.clusters[name]
		if !ok || cur.c.Pool() != st.c.Pool() {
			st.c.Pool().Close()
		}
		if !ok {
			r.metrics.Forget(name)
			stats.RetriesOn(r.opts.Metrics).Forget(name)
		}
	}
	for _, st := range next.clusters {
		st.c.Pool().Retain(st.c.Endpoints())
	}
	r.log.Debug("configuration applied", "listeners", len(next.listeners), "routes", len(next.res.Routes),
		"clusters", len(next.clusters), "endpoints", len(next.res.Endpoints), "secrets", len(next.bundles))
	return nil
}

// build validates and compiles res against the configuration in service.
func (r *Runtime) build(res *Resources, prev *snapshot) (*snapshot, error) {
	b := &builder{
		rt:   r,
		prev: prev,
		next: &snapshot{
			res:       res.clone(),
			listeners: map[string]*listenerConfig{},
			clusters:  map[string]*clusterState{},
			bundles:   map[string]*tlsx.TrustBundle{},
		},
		identity:  r.identity(),
		endpoints: map[string][]cluster.EndpointSpec{},
		upstreams: map[[2]string]*hcm.Upstream{},
		routes:    map[[2]string]*route.Table[*hcm.Upstream]{},
	}
	b.secrets()
	b.loadAssignments()
	b.clusters()
	b.routeConfigs()
	b.listeners()
	if len(b.errs) > 0 {
		return nil, joinErrors(b.errs)
	}
	return b.next, nil
}

// maxReported bounds the errors spelt out in one NACK.
const maxReported = 8

func joinErrors(errs []error) error {
	if len(errs) > maxReported {
		errs = append(errs[:maxReported:maxReported], fmt.Errorf("and %d more errors", len(errs)-maxReported))
	}
	return errors.Join(errs...)
}

// Drain stops accepting connections on every listener, lets requests and
// connections in flight finish until ctx ends, then closes what is left. It
// returns ctx's error when it had to close connections.
func (r *Runtime) Drain(ctx context.Context) error {
	r.mu.Lock()
	r.draining = true
	socks := make([]*socket, 0, len(r.sockets)+len(r.retiring))
	for key, s := range r.sockets {
		socks = append(socks, s)
		delete(r.sockets, key)
	}
	// Listeners removed earlier are draining already; they end with the
	// rest at ctx's deadline.
	for s := range r.retiring {
		socks = append(socks, s)
	}
	r.mu.Unlock()

	for _, s := range socks {
		s.stopAccepting()
	}
	errs := make(chan error, len(socks))
	for _, s := range socks {
		go func() { errs <- s.drain(ctx) }()
	}
	var err error
	for range socks {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return fmt.Errorf("runtime: drain: %w", err)
	}
	return nil
}

// Close closes every listener and connection at once and releases the
// connection pools. It waits for the runtime's goroutines to end.
func (r *Runtime) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = r.Drain(ctx)
	r.mu.Lock()
	r.closed = true
	for s := range r.retiring {
		s.forceClose()
	}
	r.mu.Unlock()
	r.bg.Wait()
	r.tracing.closeAll()
	r.accessLogs.Close()
	for _, st := range r.cur.Load().clusters {
		st.c.Pool().Close()
	}
	return nil
}

// retire drains, in the background, a socket whose listener is gone.
func (r *Runtime) retire(s *socket) {
	s.stopAccepting()
	r.retiring[s] = struct{}{}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), r.opts.DrainTimeout)
		defer cancel()
		if err := s.drain(ctx); err != nil {
			r.log.Info("removed listener closed with connections still open", "address", s.addr, "err", err)
		}
		r.mu.Lock()
		delete(r.retiring, s)
		r.mu.Unlock()
	}()
}
