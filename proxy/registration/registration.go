// Package registration keeps the proxy's workload registered with the
// control plane: a Registry stream that lives as long as the proxy does. The
// endpoint is on a lease bound to the stream, so it vanishes when the proxy
// stops (at once when it stops cleanly).
package registration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/meshv1"
)

// errLeaseLost ends a stream whose endpoint went with the control plane's
// lease: the control plane asks for a new registration.
var errLeaseLost = errors.New("the control plane lost the lease the endpoint was on")

// Registration is one workload's registration. Set updates it; Run keeps it.
type Registration struct {
	conn grpc.ClientConnInterface
	log  *slog.Logger

	mu      sync.Mutex
	current *meshv1.Workload
	changed chan struct{} // closed and replaced on every Set
}

// New prepares the registration of w over conn.
func New(conn grpc.ClientConnInterface, w *meshv1.Workload, log *slog.Logger) *Registration {
	if log == nil {
		log = slog.Default()
	}
	return &Registration{conn: conn, log: log, current: proto.Clone(w).(*meshv1.Workload), changed: make(chan struct{})}
}

// SetReady marks the workload ready or not; the control plane sends traffic
// only to ready workloads.
func (r *Registration) SetReady(ready bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current.Ready == ready {
		return
	}
	w := proto.Clone(r.current).(*meshv1.Workload)
	w.Ready = ready
	r.current = w
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Registration) snapshot() (*meshv1.Workload, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current, r.changed
}

// Run registers and re-registers after any failure, until ctx is done; then
// it closes the stream so the control plane deletes the endpoint at once.
func (r *Registration) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := r.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 30*time.Second {
			backoff = 100 * time.Millisecond
		}
		wait := backoff/2 + time.Duration(mathrand.Int64N(int64(backoff)))
		r.log.Warn("registration stream ended; re-registering", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// stream registers over one Registry stream until it fails or ctx ends.
// Ending ctx cancels the stream, which the control plane takes as
// deregistration: it revokes the lease and the endpoint goes at once. A
// stream that never opened (control plane away) is abandoned just the same.
func (r *Registration) stream(ctx context.Context) error {
	// The receiver below is waited for after the stream is cancelled (defers
	// run last first), so nothing of a stream outlives it.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := meshv1.NewRegistryClient(r.conn).Register(ctx, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("registration: open stream: %w", err)
	}
	recvErr := make(chan error, 1)
	wg.Go(func() {
		for {
			resp, err := s.Recv()
			if err == nil && resp.GetLeaseLost() {
				err = errLeaseLost
			}
			if err != nil {
				recvErr <- err
				return
			}
		}
	})
	for {
		w, changed := r.snapshot()
		if err := s.Send(&meshv1.RegisterRequest{Workload: w}); err != nil {
			return fmt.Errorf("registration: send: %w", err)
		}
		r.log.Info("workload registered", "id", w.GetId(), "ready", w.GetReady())
		select {
		case <-changed:
		case err := <-recvErr:
			return fmt.Errorf("registration: %w", err)
		case <-ctx.Done():
			// cancel (deferred) ends the stream; the receiver goroutine
			// returns with the stream's error and its buffered send never blocks.
			return nil
		}
	}
}
