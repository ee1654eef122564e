package apps

import (
	"context"
	"errors"
	"io"
	"log"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/weftmesh/weft/demo/ledgerpb"
)

// ledgerRetain bounds the entries a ledger keeps, so a long demo under load
// does not grow without limit; the oldest entries go first.
const ledgerRetain = 10000

// runLedger serves the Ledger gRPC service and the standard health service.
//
// Flags: --listen ADDR, --instance NAME (default: the bound address).
func runLedger(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("ledger", stdout)
	addr := fs.String("listen", "127.0.0.1:0", "address to serve gRPC on")
	instance := fs.String("instance", "", "instance name in receipts (default: the bound address)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	logger := newLog("ledger", stdout)
	ln, err := listen(ctx, logger, *addr, "(gRPC weft.demo.ledger.v1.Ledger)")
	if err != nil {
		return err
	}
	if *instance == "" {
		*instance = ln.Addr().String()
	}

	srv := grpc.NewServer()
	ledger := newLedger(*instance, ctx.Done(), logger)
	ledgerpb.RegisterLedgerServer(srv, ledger)
	healthSrv := health.NewServer()
	healthSrv.SetServingStatus(ledgerpb.Ledger_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, healthSrv)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		srv.Stop() // ends the streams of connections already accepted
		return err
	case <-ctx.Done():
	}

	logger.Printf("shutting down")
	// Health goes NOT_SERVING first so checkers stop routing here; watches
	// end because they also select on ctx, which lets GracefulStop finish.
	healthSrv.Shutdown()
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(shutdownGrace):
		srv.Stop()
		<-stopped
	}
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// ledger is an in-memory, append-only Ledger with broadcast to watchers.
type ledger struct {
	ledgerpb.UnimplementedLedgerServer

	instance string
	stop     <-chan struct{} // closed when the app shuts down
	log      *log.Logger

	mu       sync.Mutex
	entries  []*ledgerpb.Entry // entries[i].Seq == entries[0].Seq+i
	nextSeq  uint64
	appended chan struct{} // closed and replaced on every append
}

func newLedger(instance string, stop <-chan struct{}, logger *log.Logger) *ledger {
	return &ledger{
		instance: instance,
		stop:     stop,
		log:      logger,
		nextSeq:  1,
		appended: make(chan struct{}),
	}
}

// Record appends e with the next sequence number.
func (l *ledger) Record(_ context.Context, e *ledgerpb.Entry) (*ledgerpb.Receipt, error) {
	if e.GetSource() == "" {
		return nil, status.Error(codes.InvalidArgument, "source: required")
	}
	now := timestamppb.New(time.Now())
	stored := &ledgerpb.Entry{Source: e.GetSource(), Note: e.GetNote(), RecordedAt: now}

	l.mu.Lock()
	stored.Seq = l.nextSeq
	l.nextSeq++
	if len(l.entries) >= ledgerRetain {
		// Drop the older half at once so trimming is amortised.
		l.entries = append(l.entries[:0:0], l.entries[ledgerRetain/2:]...)
	}
	l.entries = append(l.entries, stored)
	close(l.appended)
	l.appended = make(chan struct{})
	l.mu.Unlock()

	return &ledgerpb.Receipt{Seq: stored.Seq, Instance: l.instance, RecordedAt: now}, nil
}

// Watch streams retained entries from req.FromSeq on, then new ones, until
// the client cancels or the ledger stops.
func (l *ledger) Watch(req *ledgerpb.WatchRequest, stream grpc.ServerStreamingServer[ledgerpb.Entry]) error {
	l.log.Printf("watch opened from seq %d", req.GetFromSeq())
	defer l.log.Printf("watch closed")

	next := max(req.GetFromSeq(), 1)
	for {
		batch, appended := l.since(next)
		for _, e := range batch {
			if err := stream.Send(e); err != nil {
				return err
			}
			next = e.Seq + 1
		}
		select {
		case <-appended:
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-l.stop:
			return status.Error(codes.Unavailable, "ledger shutting down")
		}
	}
}

// since returns the retained entries with Seq >= seq, and a channel that is
// closed when another entry is appended.
func (l *ledger) since(seq uint64) ([]*ledgerpb.Entry, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var batch []*ledgerpb.Entry
	if len(l.entries) > 0 {
		first := l.entries[0].Seq
		i := 0
		if seq > first {
			i = int(min(seq-first, uint64(len(l.entries))))
		}
		// Entries are never modified once stored, so sharing them is safe.
		batch = slices.Clone(l.entries[i:])
	}
	return batch, l.appended
}

var _ ledgerpb.LedgerServer = (*ledger)(nil)
