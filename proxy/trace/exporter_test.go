package trace

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

type count struct{ n atomic.Int64 }

func (c *count) Add(v float64) { c.n.Add(int64(v)) }

// collector is a real OTLP/gRPC TraceService that keeps what it receives.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
	got   chan struct{}
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	c.mu.Unlock()
	select {
	case c.got <- struct{}{}:
	default:
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.spans)
}

func startGRPCCollector(t *testing.T) (*collector, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{got: make(chan struct{}, 1)}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, c)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return c, lis.Addr().String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testSpan() *tracepb.Span {
	t, s := newTraceID(), newSpanID()
	return &tracepb.Span{TraceId: t[:], SpanId: s[:], Name: "GET web.default"}
}

func TestExporterGRPC(t *testing.T) {
	c, addr := startGRPCCollector(t)
	client, err := NewGRPCClient(addr, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	var exported count
	e := NewExporter(ExporterConfig{Client: client, Resource: Resource("web.default"), FlushInterval: 20 * time.Millisecond, Exported: &exported})
	e.Start()
	for range 3 {
		e.Enqueue(testSpan())
	}
	waitFor(t, "3 spans at the collector", func() bool { return c.len() == 3 })
	waitFor(t, "the exported count", func() bool { return exported.n.Load() == 3 })
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if e.Enqueue(testSpan()) {
		t.Error("a closed exporter took a span")
	}
}

// Close sends what is queued before it returns.
func TestExporterCloseFlushes(t *testing.T) {
	c, addr := startGRPCCollector(t)
	client, _ := NewGRPCClient(addr, nil, "")
	e := NewExporter(ExporterConfig{Client: client, FlushInterval: time.Hour})
	e.Start()
	for range 5 {
		e.Enqueue(testSpan())
	}
	e.Close()
	if c.len() != 5 {
		t.Fatalf("collector has %d spans after Close, want 5", c.len())
	}
}

// A full queue drops and counts; nothing blocks.
func TestExporterDropsWhenFull(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	client, err := NewHTTPClient(srv.URL+"/v1/traces", srv.Listener.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var dropped count
	e := NewExporter(ExporterConfig{Client: client, QueueSize: 2, BatchSize: 1, MaxAttempts: 1, Dropped: &dropped})
	e.Start()
	defer e.Close()
	for range 10 {
		e.Enqueue(testSpan())
	}
	// One span in flight, two queued at most.
	if d := dropped.n.Load(); d < 7 {
		t.Errorf("dropped %d of 10 with a queue of 2", d)
	}
}

// OTLP/HTTP: protobuf POSTed to the path; a 503 is retried, a 400 is not.
func TestExporterHTTPRetries(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var spans []*tracepb.Span
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || r.Host != "collector.example:4318" {
			http.Error(w, "bad request "+r.URL.Path+" "+r.Host, http.StatusBadRequest)
			return
		}
		if calls.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		spans = append(spans, req.GetResourceSpans()[0].GetScopeSpans()[0].GetSpans()...)
		mu.Unlock()
	}))
	defer srv.Close()
	client, _ := NewHTTPClient("http://collector.example:4318/v1/traces", srv.Listener.Addr().String(), nil)
	var exported, failed count
	e := NewExporter(ExporterConfig{Client: client, FlushInterval: 10 * time.Millisecond, Exported: &exported, Failed: &failed})
	e.Start()
	e.Enqueue(testSpan())
	waitFor(t, "the retried export", func() bool { return exported.n.Load() == 1 })
	mu.Lock()
	if len(spans) != 1 || calls.Load() != 2 {
		t.Errorf("%d spans after %d calls", len(spans), calls.Load())
	}
	mu.Unlock()
	e.Close()

	bad, _ := NewHTTPClient("http://other/v1/traces", srv.Listener.Addr().String(), nil)
	e = NewExporter(ExporterConfig{Client: bad, FlushInterval: 10 * time.Millisecond, Failed: &failed})
	e.Start()
	e.Enqueue(testSpan())
	waitFor(t, "the failed export", func() bool { return failed.n.Load() == 1 })
	e.Close()
}
