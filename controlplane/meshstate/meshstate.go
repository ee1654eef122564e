// Package meshstate keeps the mesh's translate.Input current: it loads every
// resource and registered workload from the store at one revision, follows
// the store's watch from there, and hands a new, immutable Input to a
// callback after each batch of changes.
package meshstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/translate"
	"github.com/weftmesh/weft/controlplane/vip"
)

// Options configure a Watcher.
type Options struct {
	// TrustDomain is copied into every Input.
	TrustDomain string
	// TrustBundlePEM returns the roots the mesh trusts, for every new Input.
	// The slice it returns must not be modified afterwards. Call Notify
	// when the bundle changes.
	TrustBundlePEM func() []byte
	// OnChange receives each new Input, in order, from the goroutine that
	// runs Run. The Input is shared with later ones and must not be
	// modified. OnChange should return quickly: the watch waits for it.
	OnChange func(*translate.Input)
	// Log defaults to slog.Default().
	Log *slog.Logger
}

// Watcher keeps the current Input. Create one with New and start it with Run.
type Watcher struct {
	store   *store.Store
	opts    Options
	log     *slog.Logger
	notify  chan struct{}
	current atomic.Pointer[translate.Input]
	running atomic.Bool

	// warned holds what was logged as ignored, so it is logged once.
	// Only Run's goroutine touches it.
	warned map[string]bool

	// routes holds every Route by name, as of the current Input. Only
	// Run's goroutine touches it.
	routes map[objectName]*v1alpha1.RouteSpec

	// afterLoad, if set, runs between the load and the start of the watch;
	// tests use it to compact the store under the watch.
	afterLoad func()
}

// Reload backoff after a failed load or watch.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// New returns a Watcher of st. It does nothing until Run.
func New(st *store.Store, opts Options) *Watcher {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{
		store:  st,
		opts:   opts,
		log:    log.With("component", "meshstate"),
		notify: make(chan struct{}, 1),
		warned: make(map[string]bool),
	}
}

// Run is New(st, opts).Run(ctx), for callers that never need Notify.
func Run(ctx context.Context, st *store.Store, opts Options) error {
	return New(st, opts).Run(ctx)
}

// Current returns the last Input handed to OnChange, or nil before the
// first load.
func (w *Watcher) Current() *translate.Input { return w.current.Load() }

// Notify makes Run hand out a new Input even though the store did not
// change, such as when the trust bundle did. It never blocks; notifications
// that arrive before Run gets to them are merged.
func (w *Watcher) Notify() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// Run loads the state, then follows the store until ctx is done, when it
// returns nil. A compacted or broken watch makes it reload from scratch. It
// returns an error only when the store is closed under it or Run is already
// running.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("meshstate: Run called twice")
	}
	defer w.running.Store(false)

	backoff := minBackoff
	for {
		rev, err := w.load(ctx)
		if err == nil {
			// Only failed loads in a row back off further.
			backoff = minBackoff
			if w.afterLoad != nil {
				w.afterLoad()
			}
			err = w.follow(ctx, rev)
		}
		if ctx.Err() != nil {
			return nil
		}
		if cerr := w.store.Client().Ctx().Err(); cerr != nil {
			return fmt.Errorf("meshstate: store closed: %w", cerr)
		}
		w.log.Warn("reloading mesh state", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// load reads every resource and endpoint at one revision and hands out the
// Input they make. It returns that revision.
func (w *Watcher) load(ctx context.Context) (int64, error) {
	// One transaction of three ranges reads them at one revision without
	// pulling in the CA's and tokens' keys.
	resp, err := w.store.Client().Txn(ctx).Then(
		clientv3.OpGet(store.PrefixResources, clientv3.WithPrefix()),
		clientv3.OpGet(store.PrefixEndpoints, clientv3.WithPrefix()),
		clientv3.OpGet(vip.PrefixByService, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, fmt.Errorf("meshstate: load: %w", err)
	}
	b := newBatch(emptyInput(), nil)
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().GetKvs() {
			w.handle(b, string(kv.Key), kv.Value, kv.ModRevision, false)
		}
	}
	w.routes = b.routes
	w.publish(&b.next)
	w.log.Debug("loaded mesh state", "revision", resp.Header.Revision,
		"services", len(b.next.Services), "workload_services", len(b.next.Workloads))
	return resp.Header.Revision, nil
}

// follow watches the store from rev+1 and hands out a new Input after every
// watch response that changed it. It returns nil when ctx is done and an
// error when the watch fails.
func (w *Watcher) follow(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	watch := w.store.Client().Watch(wctx, "/weft/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.notify:
			in := *w.current.Load()
			w.publish(&in)
		case resp, ok := <-watch:
			if !ok {
				return fmt.Errorf("meshstate: watch from revision %d closed", rev+1)
			}
			if err := resp.Err(); err != nil {
				return fmt.Errorf("meshstate: watch from revision %d: %w", rev+1, err)
			}
			b := newBatch(w.current.Load(), w.routes)
			for _, ev := range resp.Events {
				w.handle(b, string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision, ev.Type == clientv3.EventTypeDelete)
			}
			w.routes = b.routes
			if b.changed {
				w.publish(&b.next)
			}
		}
	}
}

// publish stamps in with the trust domain and bundle, makes it current and
// hands it to OnChange. in must not be modified afterwards.
func (w *Watcher) publish(in *translate.Input) {
	in.TrustDomain = w.opts.TrustDomain
	if w.opts.TrustBundlePEM != nil {
		in.TrustBundlePEM = w.opts.TrustBundlePEM()
	}
	w.current.Store(in)
	if w.opts.OnChange != nil {
		w.opts.OnChange(in)
	}
}

// warnOnce logs msg the first time it is called with key.
func (w *Watcher) warnOnce(key, msg string, args ...any) {
	if w.warned[key] {
		return
	}
	w.warned[key] = true
	w.log.Warn(msg, args...)
}

// handle applies one key's new value, or its deletion, to b.
func (w *Watcher) handle(b *batch, key string, value []byte, modRev int64, deleted bool) {
	switch {
	case strings.HasPrefix(key, store.PrefixResources):
		w.handleResource(b, key, value, modRev, deleted)
	case strings.HasPrefix(key, store.PrefixEndpoints):
		w.handleEndpoint(b, key, value, deleted)
	case strings.HasPrefix(key, vip.Prefix):
		w.handleVIP(b, key, value, deleted)
	case strings.HasPrefix(key, store.PrefixCA),
		strings.HasPrefix(key, store.PrefixTokens),
		strings.HasPrefix(key, store.PrefixAdmin),
		strings.HasPrefix(key, store.PrefixAudit):
		// Other components' state: nothing translation reads.
	default:
		w.warnOnce(key, "ignoring unknown store key", "key", key)
	}
}
