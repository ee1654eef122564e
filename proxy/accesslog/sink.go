package accesslog

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Stdout names the process's standard output as a destination.
const Stdout = "stdout"

// QueueLines is how many lines a destination holds while its writer is
// busy; more are dropped and counted.
const QueueLines = 4096

// Sinks are the open destinations of a proxy's access logs, shared by
// every listener and kept across configuration changes, each with one
// writer goroutine that Close stops.
type Sinks struct {
	stdout  io.Writer
	dropped *prometheus.CounterVec
	written *prometheus.CounterVec

	mu     sync.Mutex
	open   map[string]*sink
	closed bool
	wg     sync.WaitGroup
}

// NewSinks returns Sinks writing "stdout" to stdout (os.Stdout when nil),
// with weft_access_log_lines_total and weft_access_log_dropped_total
// registered with reg (which may be nil).
func NewSinks(reg prometheus.Registerer, stdout io.Writer) *Sinks {
	if stdout == nil {
		stdout = os.Stdout
	}
	s := &Sinks{
		stdout: stdout,
		open:   map[string]*sink{},
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_access_log_dropped_total",
			Help: "Access log lines dropped because their destination could not keep up.",
		}, []string{"path"}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_access_log_lines_total",
			Help: "Access log lines queued for writing.",
		}, []string{"path"}),
	}
	if reg != nil {
		s.dropped = registerVec(reg, s.dropped)
		s.written = registerVec(reg, s.written)
	}
	return s
}

func registerVec(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := reg.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
	}
	return c
}

// sink is one destination: a bounded queue and the goroutine that drains it.
type sink struct {
	// mu orders writes before the close of ch: a request that ends while
	// the proxy shuts down loses its line rather than panicking.
	mu     sync.RWMutex
	closed bool
	ch     chan []byte
	// started is set once start has run; closer closes a file never written.
	started bool
	start   func()
	closer  io.Closer
	dropped prometheus.Counter
	written prometheus.Counter
}

// get returns the destination's sink, opening it (a file in append mode)
// and starting its writer the first time.
func (s *Sinks) get(path string) (*sink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.open[path]; ok {
		return k, nil
	}
	if s.closed {
		return nil, fmt.Errorf("access log %s: the proxy is shutting down", path)
	}
	var w io.Writer = s.stdout
	var closer io.Closer
	if path != Stdout && path != "/dev/stdout" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("access log: %w", err)
		}
		w, closer = f, f
	}
	k := &sink{ch: make(chan []byte, QueueLines), dropped: s.dropped.WithLabelValues(path), written: s.written.WithLabelValues(path)}
	// The writer starts with the first line: a configuration that is only
	// validated, or that never logs, costs no goroutine.
	k.start = func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			k.run(w)
			if closer != nil {
				closer.Close()
			}
		}()
	}
	k.closer = closer
	s.open[path] = k
	return k, nil
}

// write queues a line, or drops it when the queue is full. It never blocks.
func (k *sink) write(line []byte) {
	k.mu.RLock()
	if !k.started {
		k.mu.RUnlock()
		k.mu.Lock()
		if !k.started && !k.closed {
			k.started = true
			k.start()
		}
		k.mu.Unlock()
		k.mu.RLock()
	}
	defer k.mu.RUnlock()
	if k.closed {
		k.dropped.Inc()
		return
	}
	select {
	case k.ch <- line:
		k.written.Inc()
	default:
		k.dropped.Inc()
	}
}

// run writes queued lines until the queue is closed, flushing whenever it
// has caught up.
func (k *sink) run(w io.Writer) {
	bw := bufio.NewWriterSize(w, 64<<10)
	for line := range k.ch {
		bw.Write(line)
		if len(k.ch) == 0 {
			bw.Flush()
		}
	}
	bw.Flush()
}

// Close writes what is queued, closes the files and stops the writers.
// Loggers compiled before must not be used after.
func (s *Sinks) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for _, k := range s.open {
		k.mu.Lock()
		k.closed = true
		close(k.ch)
		if !k.started && k.closer != nil {
			k.closer.Close()
		}
		k.mu.Unlock()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
