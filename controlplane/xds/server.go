// Package xds serves the mesh's configuration to proxies over Envoy's
// Aggregated Discovery Service: it authenticates each proxy by its SVID,
// translates the mesh state for it, and pushes, debounced, only the
// resource types whose content changed.
package xds

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftmesh/weft/controlplane/translate"
	"google.golang.org/grpc"
)

// DefaultDebounce is how long Options.Debounce defaults to.
const DefaultDebounce = 20 * time.Millisecond

// Options configure a Server.
type Options struct {
	// Log receives connection, push and NACK events; nil discards them.
	Log *slog.Logger
	// Debounce is how long updates are gathered before proxies are
	// recomputed: a burst of changes costs one push. Default 20ms.
	Debounce time.Duration
	// Metrics registers the server's Prometheus metrics; nil leaves them unregistered.
	Metrics prometheus.Registerer
}

// Server is the control plane's ADS server. Register it on a gRPC server
// whose TLS config requires and verifies client certificates, feed it with
// Update, and keep Run running.
type Server struct {
	log      *slog.Logger
	debounce time.Duration
	metrics  *metrics
	ran      atomic.Bool

	// input is the latest Input given to Update; updated wakes Run.
	input   atomic.Pointer[translate.Input]
	updated chan struct{}
	// translations shares, between proxies, the resources that depend on
	// one service alone, and those that came out the same.
	translations *translate.Cache

	mu    sync.Mutex // guards nodes and every node's streams
	nodes map[string]*node
}

// New returns a Server. It serves nothing until registered, and pushes
// nothing until Run runs and Update is called.
func New(opts Options) *Server {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	s := &Server{
		log:          opts.Log,
		debounce:     opts.Debounce,
		metrics:      newMetrics(opts.Metrics),
		updated:      make(chan struct{}, 1),
		translations: translate.NewCache(),
		// Nodes are keyed by node.id, which authentication ties to the
		// SVID's service: see authorize.
		nodes: map[string]*node{},
	}
	return s
}

// Register adds the Aggregated Discovery Service to g. Its streams end
// when g stops.
func (s *Server) Register(g *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, ads{s: s})
}

// Update hands the server the mesh's current state. It returns at once;
// after the debounce, Run recomputes the connected proxies that read what
// changed since the last input it saw. The server keeps in and reads it from
// other goroutines: the caller must not modify it afterwards, nor anything
// it holds (an Input may share its specs and workload slices with the last
// one, as meshstate's do; what is shared is taken as unchanged).
func (s *Server) Update(in *translate.Input) {
	s.input.Store(in)
	select {
	case s.updated <- struct{}{}:
	default: // a recompute is already due; it will read this input
	}
}

// Run debounces updates and pushes them until ctx is done. It may be
// called once. The streams stay until the gRPC server stops.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("xds: Run called twice")
	}

	var (
		timer *time.Timer
		fire  <-chan time.Time
		last  *translate.Input // the input of the last recompute
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.updated:
			// The first update of a burst starts the clock; later ones
			// join it, so a steady stream of updates still pushes every
			// debounce period.
			if fire == nil {
				timer = time.NewTimer(s.debounce)
				fire = timer.C
			}
		case <-fire:
			fire = nil
			last = s.recompute(last)
		}
	}
}

// recompute pushes the latest input to the connected proxies that read
// something of it that changed since prev, the input of the last recompute,
// and returns it. A proxy whose configuration was last computed from
// another input than prev (it connected meanwhile, or a push of the last
// recompute read a newer input) is recomputed whatever changed.
func (s *Server) recompute(prev *translate.Input) *translate.Input {
	in := s.input.Load()
	if in == nil || in == prev {
		return prev
	}
	changes := diffInputs(prev, in)

	s.mu.Lock()
	nodes := make([]*node, 0, len(s.nodes))
	for _, n := range s.nodes {
		nodes = append(nodes, n)
	}
	s.mu.Unlock()
	var stale []*node
	for _, n := range nodes {
		n.push.Lock()
		switch {
		case n.closed || n.in == in:
		case n.in == prev && !changes.affect(n.meta):
			// Nothing it reads changed: its configuration is in's too.
			n.in = in
		default:
			stale = append(stale, n)
		}
		n.push.Unlock()
	}

	// Proxies are independent: translate them on every core. The workers
	// are joined before returning, so Run owns them.
	work := make(chan *node)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(stale)) {
		wg.Go(func() {
			for n := range work {
				if err := s.push(n); err != nil {
					s.log.Error("xds: push", "node", n.id, "err", err)
				}
			}
		})
	}
	for _, n := range stale {
		work <- n
	}
	close(work)
	wg.Wait()
	s.translations.Prune(in)
	s.metrics.recomputed.Add(float64(len(stale)))
	return in
}

// push translates the latest input for n and, if the configuration of any
// type changed, publishes n's snapshot; its streams then send the changed
// types only.
func (s *Server) push(n *node) error {
	n.push.Lock()
	defer n.push.Unlock()
	in := s.input.Load()
	if n.closed || in == nil {
		return nil
	}
	start := time.Now()
	res, err := s.translations.ForNode(in, n.meta)
	if err != nil {
		n.setError(err)
		return err
	}
	// Each type carries its own version, so the streams send only the
	// types whose content changed.
	byType, versionOf := res.ByType(), res.Version
	if n.meta.Proxyless {
		byType, versionOf = requestedOnly(res, n.requested)
	}
	prev, snap := n.snap.Load(), new(snapshot)
	versions := make(map[string]string, len(byType))
	var changed []string
	for typeURL, items := range byType {
		ts := snap.of(typeURL)
		if ts == nil {
			continue // a type no stream is sent
		}
		*ts = typeSnapshot{version: versionOf(typeURL), items: items}
		versions[typeURL] = ts.version
		if prev == nil || prev.of(typeURL).version != ts.version {
			changed = append(changed, typeLabel(typeURL))
		}
	}
	if len(changed) > 0 {
		s.publish(n, snap)
		n.setVersions(versions)
		slices.Sort(changed)
		s.log.Debug("xds: snapshot set", "node", n.id, "changed", changed)
	}
	n.in = in
	n.setError(nil)
	s.metrics.pushDuration.Observe(time.Since(start).Seconds())
	return nil
}
