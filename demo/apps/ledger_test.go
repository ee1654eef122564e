package apps

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/demo/ledgerpb"
)

// dialLedger returns a plaintext gRPC connection to addr, closed with the test.
func dialLedger(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func record(t *testing.T, client ledgerpb.LedgerClient, note string) *ledgerpb.Receipt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := client.Record(ctx, &ledgerpb.Entry{Source: "test", Note: note})
	if err != nil {
		t.Fatalf("Record(%q): %v", note, err)
	}
	return r
}

// recv receives one entry and checks its sequence number and note.
func recv(t *testing.T, stream grpc.ServerStreamingClient[ledgerpb.Entry], seq uint64, note string) {
	t.Helper()
	e, err := stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if e.GetSeq() != seq || e.GetNote() != note || e.GetSource() != "test" || e.GetRecordedAt() == nil {
		t.Fatalf("Recv = %v, want seq %d, note %q, source test, a time", e, seq, note)
	}
}

func TestLedgerRecordAndWatch(t *testing.T) {
	app := start(t, "ledger", "--listen", "127.0.0.1:0")
	conn := dialLedger(t, app.addr)
	client := ledgerpb.NewLedgerClient(conn)

	r := record(t, client, "first")
	if r.GetSeq() != 1 || r.GetInstance() != app.addr || r.GetRecordedAt() == nil {
		t.Errorf("Receipt = %v, want seq 1, instance %s, a time", r, app.addr)
	}
	record(t, client, "second")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all, err := client.Watch(ctx, &ledgerpb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recv(t, all, 1, "first")
	recv(t, all, 2, "second")

	later, err := client.Watch(ctx, &ledgerpb.WatchRequest{FromSeq: 2})
	if err != nil {
		t.Fatal(err)
	}
	recv(t, later, 2, "second")

	record(t, client, "third")
	recv(t, all, 3, "third")
	recv(t, later, 3, "third")

	cancel()
	if _, err := all.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv after cancel = %v, want Canceled", err)
	}
	app.out.wait(t, "watch closed")
}

func TestLedgerRejectsEntryWithoutSource(t *testing.T) {
	app := start(t, "ledger")
	client := ledgerpb.NewLedgerClient(dialLedger(t, app.addr))
	_, err := client.Record(context.Background(), &ledgerpb.Entry{Note: "anonymous"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("Record without source = %v, want InvalidArgument", err)
	}
}

func TestLedgerHealth(t *testing.T) {
	app := start(t, "ledger")
	health := healthpb.NewHealthClient(dialLedger(t, app.addr))
	for _, service := range []string{"", ledgerpb.Ledger_ServiceDesc.ServiceName} {
		resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, %v; want SERVING", service, resp, err)
		}
	}
}

// TestLedgerStopsWithOpenWatch checks that an open Watch does not hold up
// shutdown: the watcher is told Unavailable and Run returns nil.
func TestLedgerStopsWithOpenWatch(t *testing.T) {
	app := start(t, "ledger")
	client := ledgerpb.NewLedgerClient(dialLedger(t, app.addr))
	stream, err := client.Watch(context.Background(), &ledgerpb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	app.out.wait(t, "watch opened")

	if err := app.stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("Recv after shutdown = %v, want Unavailable", err)
	}
}

// TestLedgerRetention checks that a full ledger drops its oldest entries
// and that a watch from a dropped sequence number starts at the oldest kept.
func TestLedgerRetention(t *testing.T) {
	l := newLedger("test", nil, nil)
	for range ledgerRetain + 1 {
		if _, err := l.Record(context.Background(), &ledgerpb.Entry{Source: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	batch, _ := l.since(1)
	if len(batch) > ledgerRetain || len(batch) == 0 {
		t.Fatalf("since(1) returned %d entries, want 1 to %d", len(batch), ledgerRetain)
	}
	if last := batch[len(batch)-1].GetSeq(); last != ledgerRetain+1 {
		t.Errorf("last entry has seq %d, want %d", last, ledgerRetain+1)
	}
	for i, e := range batch[1:] {
		if e.GetSeq() != batch[i].GetSeq()+1 {
			t.Fatalf("entries not consecutive: seq %d after %d", e.GetSeq(), batch[i].GetSeq())
		}
	}
	if batch, _ := l.since(ledgerRetain + 2); len(batch) != 0 {
		t.Errorf("since(next) returned %d entries, want none", len(batch))
	}
}
