package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/api/meshv1"
)

// errLetGo refuses registrations once the replica is shutting down.
var errLetGo = errors.New("this control plane replica is shutting down")

// replicaLease is the one etcd lease a control plane replica keeps alive for
// every registration it serves, as a Consul agent's session holds its
// checks: one lease and one keepalive per replica rather than per workload
// (2000 proxies were 2000 leases, 2000 keepalive goroutines and ~600 lease
// renewals a second at rest). A registration whose stream ends is deleted
// by revision, so that only the stream that wrote it last can delete it; if
// the replica dies, the lease expires and takes every registration it still
// held with it.
type replicaLease struct {
	client *clientv3.Client
	ttl    int64
	log    *slog.Logger

	mu      sync.Mutex
	cur     *grant // nil before the first registration and after a loss
	stopped bool
	keepers sync.WaitGroup
}

// grant is one lease of the replica's.
type grant struct {
	id  clientv3.LeaseID
	ttl int64
	// lost is done when the lease is no longer kept alive: it expired
	// (etcd unreachable for longer than its TTL), the store client closed,
	// or the replica let it go. Its registrations then live at most one TTL.
	lost     context.Context
	markLost context.CancelFunc
	stop     context.CancelFunc
	// reply answers every accepted request of the lease's registrations.
	reply *meshv1.RegisterResponse
}

// get returns the lease in use, granting one if there is none.
func (r *replicaLease) get(ctx context.Context) (*grant, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return nil, errLetGo
	}
	if r.cur != nil {
		return r.cur, nil
	}
	resp, err := r.client.Grant(ctx, r.ttl)
	if err != nil {
		return nil, fmt.Errorf("grant lease: %w", err)
	}
	kaCtx, stop := context.WithCancel(context.Background())
	alive, err := r.client.KeepAlive(kaCtx, resp.ID)
	if err != nil {
		stop()
		r.revoke(resp.ID)
		return nil, fmt.Errorf("keep lease %x alive: %w", int64(resp.ID), err)
	}
	g := &grant{id: resp.ID, ttl: resp.TTL, stop: stop, reply: &meshv1.RegisterResponse{LeaseTtlSeconds: resp.TTL}}
	g.lost, g.markLost = context.WithCancel(context.Background())
	r.cur = g
	r.keepers.Add(1)
	go r.keep(g, alive)
	r.log.Info("replica lease granted", "lease", fmt.Sprintf("%x", int64(g.id)), "ttl_seconds", g.ttl)
	return g, nil
}

// keep drains the lease's keepalive responses until the keepalive ends,
// then forgets the lease so that the next registration gets a new one.
func (r *replicaLease) keep(g *grant, alive <-chan *clientv3.LeaseKeepAliveResponse) {
	defer r.keepers.Done()
	for range alive {
	}
	r.mu.Lock()
	if r.cur == g {
		r.cur = nil
	}
	stopped := r.stopped
	r.mu.Unlock()
	g.markLost()
	if !stopped {
		r.log.Warn("replica lease lost: its registrations end and are made again on a new one",
			"lease", fmt.Sprintf("%x", int64(g.id)))
	}
}

// letGo stops keeping the lease alive without revoking it: its
// registrations outlive the replica by one TTL, long enough for their
// proxies to register with another replica. No lease is granted after.
func (r *replicaLease) letGo() { r.end(false) }

// close stops the keepalive and revokes the lease, deleting whatever is
// still on it.
func (r *replicaLease) close() { r.end(true) }

func (r *replicaLease) end(revoke bool) {
	r.mu.Lock()
	r.stopped = true
	g := r.cur
	r.mu.Unlock()
	if g != nil {
		g.stop()
		if revoke {
			r.revoke(g.id)
		}
	}
	r.keepers.Wait()
}

func (r *replicaLease) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	if _, err := r.client.Revoke(ctx, id); err != nil {
		r.log.Warn("could not revoke the replica lease; it expires by itself", "lease", fmt.Sprintf("%x", int64(id)), "err", err)
	}
}

// revokeTimeout bounds a revocation; if it fails, the lease expires by itself.
const revokeTimeout = 5 * time.Second
