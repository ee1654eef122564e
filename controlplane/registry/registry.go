// Package registry serves the Registry gRPC service. A proxy registers its
// workload on a stream; the endpoint is stored on the etcd lease that this
// control plane replica keeps alive for all of its registrations. When the
// stream ends the endpoint is deleted at once (unless a newer registration
// replaced it); when the replica dies its lease expires and takes the
// endpoint with it.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/internal/offstack"
)

// DefaultLeaseTTL is how long an endpoint outlives a stream that vanished
// without closing, unless Options say otherwise.
const DefaultLeaseTTL = 10 * time.Second

// Options configure a Server.
type Options struct {
	// Store keeps the endpoints. Required.
	Store *store.Store
	// TrustDomain is the mesh's: client certificates from any other are refused.
	TrustDomain string
	// LeaseTTL is how long an endpoint outlives a stream that vanished
	// without closing; etcd counts it in whole seconds, rounded up, and may
	// raise it to its own minimum. Default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Metrics, if set, receives the registration gauge.
	Metrics prometheus.Registerer
	// Log defaults to slog.Default().
	Log *slog.Logger
}

// Server implements meshv1.RegistryServer.
type Server struct {
	meshv1.UnimplementedRegistryServer

	store       *store.Store
	trustDomain string
	lease       replicaLease
	log         *slog.Logger
	active      prometheus.Gauge
	// handingOver is set when this replica shuts down: its streams then end
	// without deleting, so endpoints outlive the replica by one lease TTL,
	// long enough for their proxies to re-register with another one.
	handingOver atomic.Bool
}

// HandOver prepares a shutdown: registrations whose streams end from now on
// keep their endpoints until the replica's lease expires, instead of
// deleting them as a departing proxy's would be, and the lease is no longer
// kept alive. Call it before stopping the gRPC server.
func (s *Server) HandOver() {
	s.handingOver.Store(true)
	s.lease.letGo()
}

// Close revokes the replica's lease, deleting every registration still on
// it, and stops its keepalive. Call it after stopping the gRPC server, when
// the replica's registrations are not to outlive it (HandOver is for those
// that are).
func (s *Server) Close() { s.lease.close() }

// New returns a Registry server. Register it with
// meshv1.RegisterRegistryServer on a gRPC server whose TLS configuration
// verifies client certificates against the mesh's trust bundle.
func New(opts Options) *Server {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	ttl := opts.LeaseTTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	log = log.With("component", "registry")
	s := &Server{
		store:       opts.Store,
		trustDomain: opts.TrustDomain,
		lease: replicaLease{
			client: opts.Store.Client(),
			ttl:    int64((ttl + time.Second - 1) / time.Second),
			log:    log,
		},
		log: log,
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "weft",
			Subsystem: "registry",
			Name:      "registrations",
			Help:      "Workloads currently registered through this control plane replica.",
		}),
	}
	if opts.Metrics != nil {
		if err := opts.Metrics.Register(s.active); err != nil {
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) {
				if g, ok := dup.ExistingCollector.(prometheus.Gauge); ok {
					s.active = g
				}
			} else {
				s.log.Warn("registration gauge not exported", "err", err)
			}
		}
	}
	return s
}

// Register serves one workload's registration stream: the first request
// registers, later ones update the workload, and every accepted request is
// answered with the lease's TTL. Whatever ends the stream deletes the
// endpoint, unless it was registered again since.
func (s *Server) Register(stream grpc.BidiStreamingServer[meshv1.RegisterRequest, meshv1.RegisterResponse]) error {
	ctx := stream.Context()
	caller, err := s.authenticate(ctx)
	if err != nil {
		return err
	}
	req, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	w := req.GetWorkload()
	if err := checkWorkload(caller, w); err != nil {
		return err
	}
	// Registering writes to etcd, deep down the stack; the stream's
	// goroutine parks in Recv for the proxy's life and must not keep that
	// depth (see offstack).
	var l *registration
	if err := offstack.Do(func() (err error) { l, err = s.register(ctx, w); return err }); err != nil {
		return err
	}
	defer l.deregister()
	s.active.Inc()
	defer s.active.Dec()
	l.log().Info("workload registered", "ready", w.GetReady())
	if err := l.send(stream, l.grant.reply); err != nil {
		return err
	}
	// The stream's goroutine waits in Recv, so a lost lease cannot end the
	// stream: the proxy is told, and ends it (see RegisterResponse).
	stop := context.AfterFunc(l.grant.lost, func() { l.leaseLost(stream) })
	defer stop()
	return s.serve(stream, caller, l)
}

// authenticate returns the caller's SPIFFE ID if it belongs to this mesh.
func (s *Server) authenticate(ctx context.Context) (spiffe.ID, error) {
	caller, err := peerID(ctx)
	if err != nil {
		return spiffe.ID{}, status.Error(codes.Unauthenticated, err.Error())
	}
	if caller.TrustDomain != s.trustDomain {
		return spiffe.ID{}, status.Errorf(codes.PermissionDenied,
			"registry: client certificate %s is from trust domain %q, but this mesh's is %q", caller, caller.TrustDomain, s.trustDomain)
	}
	return caller, nil
}

// serve applies the stream's later requests until the stream ends. It
// reads them on the stream's own goroutine: a registration costs no other.
func (s *Server) serve(stream grpc.BidiStreamingServer[meshv1.RegisterRequest, meshv1.RegisterResponse], caller spiffe.ID, l *registration) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		switch {
		case l.lost.Load():
			// The lease expired, this replica's store client is closing (it
			// is dying), or it is handing over: either way the endpoint is
			// left to the lease, not deleted.
			l.log().Warn("workload deregistered: lease lost")
			return status.Errorf(codes.Unavailable, "registry: lease of %q lost; register again", l.id)
		case errors.Is(err, io.EOF):
			l.log().Info("workload deregistered: stream closed")
			return nil
		case ctx.Err() != nil:
			l.log().Info("workload deregistered: stream cancelled")
			return status.FromContextError(ctx.Err()).Err()
		case err != nil:
			l.log().Info("workload deregistered: stream failed", "err", err)
			return err
		}
		w := req.GetWorkload()
		if err := checkWorkload(caller, w); err != nil {
			return err
		}
		if w.GetId() != l.id {
			return status.Errorf(codes.InvalidArgument,
				"registry: workload id changed from %q to %q on one stream; open a new stream for another workload", l.id, w.GetId())
		}
		if err := offstack.Do(func() error {
			rev, err := s.store.PutWorkload(ctx, w, l.grant.id)
			if err == nil {
				l.rev = rev
			}
			return err
		}); err != nil {
			return status.Errorf(codes.Unavailable, "registry: %v", err)
		}
		l.log().Debug("workload updated", "ready", w.GetReady())
		if err := l.send(stream, l.grant.reply); err != nil {
			return err
		}
	}
}

// registration is one stream's endpoint, on the replica's lease. It lives
// as long as its proxy: it keeps what deregistering needs, not the workload.
type registration struct {
	s              *Server
	namespace, svc string
	id             string
	grant          *grant
	rev            int64 // of the stream's last write of the endpoint
	// lost is set when the lease was lost: the endpoint is the lease's then.
	lost atomic.Bool
	// sending serialises the stream's responses: replies from the stream's
	// goroutine, and the lease's loss from the goroutine that reports it.
	sending sync.Mutex
}

// send sends r on the registration's stream.
func (l *registration) send(stream grpc.BidiStreamingServer[meshv1.RegisterRequest, meshv1.RegisterResponse], r *meshv1.RegisterResponse) error {
	l.sending.Lock()
	defer l.sending.Unlock()
	return stream.Send(r)
}

// leaseLost tells the proxy that the endpoint went with the lease, so that
// it registers again. It runs on a goroutine of its own once the lease is
// lost; if the proxy does not read, its Send ends with the stream.
func (l *registration) leaseLost(stream grpc.BidiStreamingServer[meshv1.RegisterRequest, meshv1.RegisterResponse]) {
	l.lost.Store(true)
	l.log().Warn("lease lost: asking the proxy to register again")
	if err := l.send(stream, &meshv1.RegisterResponse{LeaseTtlSeconds: l.grant.ttl, LeaseLost: true}); err != nil {
		l.log().Debug("lease loss not sent", "err", err)
	}
}

// register puts w on the replica's lease.
func (s *Server) register(ctx context.Context, w *meshv1.Workload) (*registration, error) {
	g, err := s.lease.get(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "registry: register %q: %v", w.GetId(), err)
	}
	rev, err := s.store.PutWorkload(ctx, w, g.id)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "registry: %v", err)
	}
	return &registration{s: s, namespace: w.GetNamespace(), svc: w.GetService(), id: w.GetId(), grant: g, rev: rev}, nil
}

// log returns the server's logger with the registration's workload and
// lease, made when something is logged rather than kept per registration.
func (l *registration) log() *slog.Logger {
	return l.s.log.With("workload", l.id, "lease", fmt.Sprintf("%x", int64(l.grant.id)))
}

// deregister deletes the endpoint at once, unless the server is handing
// over, the lease was lost, or a newer registration replaced it. It runs
// when the stream's context may already be done, so it has its own
// deadline; if it fails, the endpoint stays until the replica's lease ends.
func (l *registration) deregister() {
	if l.lost.Load() {
		return
	}
	if l.s.handingOver.Load() {
		l.log().Info("leaving the endpoint to the replica's lease for the next control plane")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	deleted, err := l.s.store.DeleteWorkloadAt(ctx, l.namespace, l.svc, l.id, l.rev)
	switch {
	case err != nil:
		l.log().Warn("could not delete the endpoint; it stays until the replica's lease ends", "err", err)
	case !deleted:
		l.log().Info("endpoint registered again since: left to the newer registration")
	}
}

var _ meshv1.RegistryServer = (*Server)(nil)
