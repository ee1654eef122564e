package trace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Client sends one batch to an OTLP collector. TracesData has the wire
// form of the OTLP ExportTraceServiceRequest.
type Client interface {
	Export(ctx context.Context, batch *tracepb.TracesData) error
	Close() error
}

// Counter is what the exporter counts into (a prometheus.Counter fits).
type Counter interface{ Add(float64) }

// Defaults of ExporterConfig.
const (
	DefaultQueueSize     = 2048
	DefaultBatchSize     = 256
	DefaultFlushInterval = time.Second
	DefaultExportTimeout = 5 * time.Second
	DefaultMaxAttempts   = 4
	// closeTimeout bounds the last flush when an exporter is closed.
	closeTimeout = 2 * time.Second
)

// ExporterConfig configures an Exporter. Zero values take the defaults.
type ExporterConfig struct {
	Client Client
	// Resource describes the workload the spans come from.
	Resource *resourcepb.Resource
	// QueueSize bounds the spans waiting for export; more are dropped.
	QueueSize int
	// BatchSize is the most spans sent in one export.
	BatchSize int
	// FlushInterval is how long a span may wait for its batch to fill.
	FlushInterval time.Duration
	// ExportTimeout bounds one export attempt.
	ExportTimeout time.Duration
	// MaxAttempts bounds the attempts of a batch whose export fails with a
	// retryable error; backoff doubles from 100ms between them.
	MaxAttempts int
	// Exported counts spans the collector accepted; Dropped spans lost to
	// a full queue, Failed spans lost to failed exports. Nil for none.
	Exported, Dropped, Failed Counter
	Log                       *slog.Logger
}

// Exporter batches spans and sends them from its own goroutine, which
// Start starts and Close stops. Enqueue never blocks.
type Exporter struct {
	cfg   ExporterConfig
	queue chan *tracepb.Span
	start sync.Once

	mu     sync.RWMutex // guards closed against Enqueue's send
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// NewExporter returns an exporter; spans queue until Start.
func NewExporter(cfg ExporterConfig) *Exporter {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.ExportTimeout <= 0 {
		cfg.ExportTimeout = DefaultExportTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	e := &Exporter{
		cfg:   cfg,
		queue: make(chan *tracepb.Span, cfg.QueueSize),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	return e
}

// Start starts the exporter's goroutine; a second call does nothing.
func (e *Exporter) Start() {
	e.start.Do(func() { go e.run() })
}

// Enqueue queues a finished span; it returns false, and counts the span
// as dropped, when the queue is full or the exporter closed.
func (e *Exporter) Enqueue(s *tracepb.Span) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if !e.closed {
		select {
		case e.queue <- s:
			return true
		default:
		}
	}
	add(e.cfg.Dropped, 1)
	return false
}

// Close stops the exporter: queued spans get one last export attempt,
// bounded by a short timeout, then the goroutine ends and the client is
// closed. Close waits for all of it. An exporter never started is only
// closed.
func (e *Exporter) Close() error {
	e.start.Do(func() { close(e.done) })
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.done
		return nil
	}
	e.closed = true
	close(e.stop)
	e.mu.Unlock()
	<-e.done
	if err := e.cfg.Client.Close(); err != nil {
		return fmt.Errorf("trace: close exporter client: %w", err)
	}
	return nil
}

func (e *Exporter) run() {
	defer close(e.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Stopping ends a retry wait or an export in progress, except the
		// last flush, which has its own deadline.
		<-e.stop
		cancel()
	}()
	tick := time.NewTicker(e.cfg.FlushInterval)
	defer tick.Stop()
	batch := make([]*tracepb.Span, 0, e.cfg.BatchSize)
	for {
		select {
		case s := <-e.queue:
			batch = append(batch, s)
			if len(batch) < e.cfg.BatchSize {
				continue
			}
		case <-tick.C:
			if len(batch) == 0 {
				continue
			}
		case <-e.stop:
			e.flushAll(batch)
			return
		}
		e.send(ctx, batch, e.cfg.MaxAttempts)
		batch = batch[:0]
	}
}

// flushAll sends what is batched and queued, once, before the exporter ends.
func (e *Exporter) flushAll(batch []*tracepb.Span) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	for {
		select {
		case s := <-e.queue:
			batch = append(batch, s)
			if len(batch) < e.cfg.BatchSize {
				continue
			}
		default:
		}
		if len(batch) == 0 {
			return
		}
		e.send(ctx, batch, 1)
		batch = batch[:0]
	}
}

// send exports batch, retrying retryable failures with backoff.
func (e *Exporter) send(ctx context.Context, batch []*tracepb.Span, attempts int) {
	data := &tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   e.cfg.Resource,
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: scope, Spans: batch}},
	}}}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, e.cfg.ExportTimeout)
		err := e.cfg.Client.Export(actx, data)
		cancel()
		if err == nil {
			add(e.cfg.Exported, float64(len(batch)))
			return
		}
		if !IsRetryable(err) || attempt >= attempts || ctx.Err() != nil {
			add(e.cfg.Failed, float64(len(batch)))
			e.cfg.Log.Warn("trace export failed; spans dropped", "spans", len(batch), "attempts", attempt, "err", err)
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func add(c Counter, n float64) {
	if c != nil {
		c.Add(n)
	}
}

// retryableError marks an export failure worth another attempt.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// Retryable marks err as worth another attempt (the collector was
// unavailable, overloaded or slow).
func Retryable(err error) error { return &retryableError{err: err} }

// IsRetryable says err was marked Retryable.
func IsRetryable(err error) bool {
	var r *retryableError
	return errors.As(err, &r)
}
