// Package xds serves the mesh's configuration to proxies over Envoy's
// Aggregated Discovery Service: it authenticates each proxy by its SVID,
// translates the mesh state for it, and pushes, debounced, only the
// resource types whose content changed.
package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
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
	cache    cache.SnapshotCache
	ads      server.Server

	// ctx ends the ADS streams when Run returns.
	ctx    context.Context
	cancel context.CancelFunc
	ran    atomic.Bool

	// input is the latest Input given to Update; updated wakes Run.
	input   atomic.Pointer[translate.Input]
	updated chan struct{}
	// translations shares, between proxies, the resources that depend on
	// one service alone, and those that came out the same.
	translations *translate.Cache
	// typeSets shares the snapshot cache's per-type resource indexes.
	typeSets *typeSets

	mu      sync.Mutex
	streams map[int64]*stream
	nodes   map[string]*node
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
		typeSets:     newTypeSets(),
		streams:      map[int64]*stream{},
		nodes:        map[string]*node{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// Nodes are keyed by node.id, which authentication ties to the SVID's
	// service: see authorize.
	s.cache = cache.NewSnapshotCache(true, cache.IDHash{}, cacheLog{s.log})
	// Ordered ADS: every stream's responses go through one channel and a
	// plain select, in the order the cache produced them. The default
	// makes a channel per request and multiplexes them with reflect.Select,
	// which boxes what it receives and keeps a slice of cases per stream:
	// garbage and held memory that thousands of streams multiply.
	s.ads = server.NewServer(s.ctx, s.cache, s.callbacks(), sotw.WithOrderedADS())
	return s
}

// Register adds the Aggregated Discovery Service to g.
func (s *Server) Register(g *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, s.ads)
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

// Run debounces updates and pushes them until ctx is done, then ends the
// ADS streams. It may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("xds: Run called twice")
	}
	defer s.cancel()

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
// type changed, sets n's snapshot; the cache then answers the open watches
// of the changed types only.
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
	// Each type carries its own version, so the cache answers only the
	// watches of the types whose content changed.
	versions := make(map[string]string, len(n.versions))
	var changed []string
	byType, versionOf := res.ByType(), res.Version
	if n.meta.Proxyless {
		byType, versionOf = requestedOnly(res, n.requested)
	}
	for typeURL := range byType {
		v := versionOf(typeURL)
		versions[typeURL] = v
		if n.versions[typeURL] != v {
			changed = append(changed, typeLabel(typeURL))
		}
	}
	if len(changed) > 0 {
		if err := s.setSnapshot(n, byType, versions); err != nil {
			n.setError(err)
			return err
		}
		n.versions = versions
		n.setVersions(versions)
		slices.Sort(changed)
		s.log.Debug("xds: snapshot set", "node", n.id, "changed", changed)
	}
	n.in = in
	n.setError(nil)
	s.metrics.pushDuration.Observe(time.Since(start).Seconds())
	return nil
}

// setSnapshot sets n's snapshot to the resources of byType at versions,
// each type's set shared with the snapshots of other proxies that hold the
// same (see typeSets), and releases the sets of n's last snapshot. The
// caller holds n.push.
func (s *Server) setSnapshot(n *node, byType map[string][]types.Resource, versions map[string]string) error {
	var snap cache.Snapshot
	held := make(map[string]*typeSet, len(byType))
	for typeURL, items := range byType {
		set := s.typeSets.acquire(typeURL, versions[typeURL], items)
		held[typeURL] = set
		snap.Resources[cache.GetResponseType(typeURL)] = set.res
	}
	if err := s.cache.SetSnapshot(s.ctx, n.id, &snap); err != nil {
		s.releaseSets(held)
		return fmt.Errorf("xds: set snapshot of %q: %w", n.id, err)
	}
	s.releaseSets(n.held)
	n.held = held
	return nil
}

// releaseSets releases the sets a snapshot held.
func (s *Server) releaseSets(held map[string]*typeSet) {
	for _, set := range held {
		s.typeSets.release(set)
	}
}

// cacheLog writes go-control-plane's log lines to slog.
type cacheLog struct{ l *slog.Logger }

func (c cacheLog) Debugf(format string, args ...any) { c.logf(slog.LevelDebug, format, args) }
func (c cacheLog) Infof(format string, args ...any)  { c.logf(slog.LevelInfo, format, args) }
func (c cacheLog) Warnf(format string, args ...any)  { c.logf(slog.LevelWarn, format, args) }
func (c cacheLog) Errorf(format string, args ...any) { c.logf(slog.LevelError, format, args) }

func (c cacheLog) logf(level slog.Level, format string, args []any) {
	if c.l.Enabled(context.Background(), level) {
		c.l.Log(context.Background(), level, "xds: "+fmt.Sprintf(format, args...))
	}
}
