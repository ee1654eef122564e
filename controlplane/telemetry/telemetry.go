// Package telemetry is the control plane's view of the mesh's traffic: it
// scrapes every registered proxy's admin /metrics on an interval, keeps a
// short history of each, and computes golden metrics (rates, success
// rate, latency percentiles, mTLS share, TCP) over a window from counter
// deltas. It also fans in the live taps of a service's proxies.
package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
)

// Source is what the API server and the dashboard read.
type Source interface {
	// Stats are the golden metrics of every service, edge and workload over
	// the last window.
	Stats(window time.Duration) (*client.Stats, error)
	// Tap streams the live requests of the proxies f selects until ctx is
	// done; the channel is closed when every stream has ended.
	Tap(ctx context.Context, f TapFilter) (<-chan client.TapEvent, error)
}

// TapFilter selects the proxies to tap and the requests to see.
type TapFilter struct {
	// Service and Namespace select the proxies; an empty Service taps
	// every proxy of the namespace, an empty Namespace every namespace.
	Service, Namespace string
	// Direction is "inbound" (the default: what the service receives) or
	// "outbound".
	Direction string
	// PathPrefix, Method and Authority filter requests; empty matches all.
	PathPrefix, Method, Authority string
}

// Workloads lists registered workloads (the store).
type Workloads interface {
	ListWorkloads(ctx context.Context, namespace, service string) ([]*meshv1.Workload, error)
}

// Defaults of Options.
const (
	DefaultInterval = 5 * time.Second
	DefaultHistory  = 15 * time.Minute
	DefaultWindow   = time.Minute
)

// Options configure an Aggregator.
type Options struct {
	Workloads Workloads
	// Interval between scrapes; DefaultInterval when zero.
	Interval time.Duration
	// History is how long samples are kept, the longest window Stats
	// answers for; DefaultHistory when zero.
	History time.Duration
	// HTTP is the client for proxies' admin ports; a client with a short
	// timeout when nil. Taps use it too, without its timeout.
	HTTP *http.Client
	// Log defaults to discarding.
	Log *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Aggregator implements Source by scraping proxies.
type Aggregator struct {
	opts   Options
	scrape *http.Client
	stream *http.Client

	mu        sync.Mutex
	workloads map[string]*workloadHistory // by workload ID

	// stop ends taps when the aggregator stops; wg owns their goroutines.
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// New returns an Aggregator; Run starts it.
func New(opts Options) *Aggregator {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.History <= 0 {
		opts.History = DefaultHistory
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	scrape, stream := opts.HTTP, opts.HTTP
	if scrape == nil {
		tr := &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute, ResponseHeaderTimeout: 5 * time.Second}
		scrape = &http.Client{Timeout: 5 * time.Second, Transport: tr}
		stream = &http.Client{Transport: tr}
	}
	return &Aggregator{opts: opts, scrape: scrape, stream: stream, workloads: map[string]*workloadHistory{}, stop: make(chan struct{})}
}

// Run scrapes every Interval until ctx is done, then ends every tap and
// waits for their goroutines.
func (a *Aggregator) Run(ctx context.Context) error {
	defer func() {
		a.stopOnce.Do(func() { close(a.stop) })
		a.wg.Wait()
	}()
	t := time.NewTicker(a.opts.Interval)
	defer t.Stop()
	for {
		a.ScrapeOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// workloadHistory is one proxy's registration and recent samples.
type workloadHistory struct {
	w       *meshv1.Workload
	samples []timedSample // oldest first
	lastErr error
}

type timedSample struct {
	at time.Time
	s  *sample
}

// ScrapeOnce scrapes every registered workload once, in parallel.
func (a *Aggregator) ScrapeOnce(ctx context.Context) {
	ws, err := a.opts.Workloads.ListWorkloads(ctx, "", "")
	if err != nil {
		a.opts.Log.Warn("telemetry: cannot list workloads", "err", err)
		return
	}
	type result struct {
		w   *meshv1.Workload
		at  time.Time
		s   *sample
		err error
	}
	results := make([]result, len(ws))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, w := range ws {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := a.scrapeOne(ctx, w)
			results[i] = result{w: w, at: a.opts.Now(), s: s, err: err}
		}()
	}
	wg.Wait()

	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range results {
		id := r.w.GetId()
		seen[id] = true
		h := a.workloads[id]
		if h == nil {
			h = &workloadHistory{}
			a.workloads[id] = h
		}
		h.w = r.w
		h.lastErr = r.err
		if r.err == nil {
			h.samples = append(h.samples, timedSample{at: r.at, s: r.s})
		}
		// Keep one sample older than History, the base of the longest window.
		cut := r.at.Add(-a.opts.History)
		for len(h.samples) > 2 && !h.samples[1].at.After(cut) {
			h.samples = h.samples[1:]
		}
	}
	for id := range a.workloads {
		if !seen[id] {
			delete(a.workloads, id)
		}
	}
}

func (a *Aggregator) scrapeOne(ctx context.Context, w *meshv1.Workload) (*sample, error) {
	if w.GetAdminAddress() == "" {
		return nil, fmt.Errorf("workload %s registered no admin address", w.GetId())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.GetAdminAddress()+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", w.GetId(), err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := a.scrape.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", w.GetId(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: admin /metrics answered %s", w.GetId(), resp.Status)
	}
	s, err := parseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", w.GetId(), err)
	}
	return s, nil
}

var _ Source = (*Aggregator)(nil)
