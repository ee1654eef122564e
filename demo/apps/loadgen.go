package apps

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// runLoadgen sends GET requests to a target at a steady rate and reports
// what came back.
//
// Flags: --target URL (required), --rps N, --duration D (0: until stopped),
// --report D (summary interval), --timeout D (per request), --concurrency N
// (most requests in flight; a tick finding none free is counted as skipped).
func runLoadgen(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("loadgen", stdout)
	target := fs.String("target", "", "URL to send GET requests to (required)")
	rps := fs.Int("rps", 10, "requests per second, 1 to 10000")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until stopped)")
	reportEvery := fs.Duration("report", 5*time.Second, "interval between summary lines")
	timeout := fs.Duration("timeout", 2*time.Second, "timeout of each request")
	concurrency := fs.Int("concurrency", 32, "most requests in flight")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if u, err := url.Parse(*target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--target %q: want an http:// or https:// URL", *target)
	}
	switch {
	case *rps < 1 || *rps > 10000:
		return fmt.Errorf("--rps %d: must be between 1 and 10000", *rps)
	case *duration < 0:
		return fmt.Errorf("--duration %v: must not be negative", *duration)
	case *reportEvery <= 0:
		return fmt.Errorf("--report %v: must be positive", *reportEvery)
	case *timeout <= 0:
		return fmt.Errorf("--timeout %v: must be positive", *timeout)
	case *concurrency < 1:
		return fmt.Errorf("--concurrency %d: must be at least 1", *concurrency)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = *concurrency
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: *timeout}
	// Requests in flight when the run ends may finish (within --timeout) so
	// that stopping does not show up as failures.
	reqCtx := context.WithoutCancel(ctx)

	logger := newLog("loadgen", stdout)
	logger.Printf("sending %d req/s to %s", *rps, *target)
	var (
		stats    loadStats
		inFlight = make(chan struct{}, *concurrency)
		wg       sync.WaitGroup
		start    = time.Now()
		last     = start
	)
	tick := time.NewTicker(time.Second / time.Duration(*rps))
	defer tick.Stop()
	report := time.NewTicker(*reportEvery)
	defer report.Stop()

loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			select {
			case inFlight <- struct{}{}:
				wg.Go(func() {
					defer func() { <-inFlight }()
					stats.record(sendOne(reqCtx, client, *target))
				})
			default:
				stats.skip()
			}
		case now := <-report.C:
			logger.Print(stats.takeInterval().summary(now.Sub(last)))
			last = now
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	logger.Printf("total over %s: %s", elapsed.Round(time.Millisecond), stats.total().summary(elapsed))
	return nil
}

// outcome is what one request came back with.
type outcome struct {
	status  string // HTTP status code, or "error" when there was no response
	ok      bool   // a 2xx status
	version string // catalog version named by the response, if any
}

// sendOne does one GET and reads which catalog version answered: the
// frontend's catalog.version, a catalog's own version, or the catalog's
// version header.
func sendOne(ctx context.Context, client *http.Client, target string) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return outcome{status: "error"}
	}
	resp, err := client.Do(req)
	if err != nil {
		return outcome{status: "error"}
	}
	defer resp.Body.Close()
	out := outcome{status: strconv.Itoa(resp.StatusCode), ok: resp.StatusCode/100 == 2}
	var body struct {
		Version string `json:"version"`
		Catalog struct {
			Version string `json:"version"`
		} `json:"catalog"`
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return outcome{status: "error"}
	}
	if out.ok {
		_ = json.Unmarshal(raw, &body) // a body without a version is still a success
		out.version = cmp.Or(body.Catalog.Version, body.Version, resp.Header.Get(catalogVersionHeader))
	}
	return out
}

// loadStats counts outcomes since the start and since the last report.
type loadStats struct {
	mu       sync.Mutex
	all      tally
	interval tally
}

func (s *loadStats) record(o outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all.add(o)
	s.interval.add(o)
}

func (s *loadStats) skip() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all.skipped++
	s.interval.skipped++
}

// takeInterval returns the counts since the last call and starts anew.
func (s *loadStats) takeInterval() tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.interval
	s.interval = tally{}
	return t
}

func (s *loadStats) total() tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.all
}

// tally counts outcomes.
type tally struct {
	ok, failed, skipped int
	failures            map[string]int // by status code, or "error"
	versions            map[string]int
}

func (t *tally) add(o outcome) {
	if !o.ok {
		t.failed++
		if t.failures == nil {
			t.failures = map[string]int{}
		}
		t.failures[o.status]++
		return
	}
	t.ok++
	if o.version != "" {
		if t.versions == nil {
			t.versions = map[string]int{}
		}
		t.versions[o.version]++
	}
}

// summary renders t, counted over d, as
// "50 req/s, 250 ok, 2 failed (503=2), versions v1=226 v2=24".
func (t tally) summary(d time.Duration) string {
	var b strings.Builder
	rate := 0.0
	if d > 0 {
		rate = float64(t.ok+t.failed) / d.Seconds()
	}
	fmt.Fprintf(&b, "%.0f req/s, %d ok, %d failed", rate, t.ok, t.failed)
	if len(t.failures) > 0 {
		fmt.Fprintf(&b, " (%s)", counts(t.failures))
	}
	if t.skipped > 0 {
		fmt.Fprintf(&b, ", %d skipped at the concurrency limit", t.skipped)
	}
	if len(t.versions) > 0 {
		fmt.Fprintf(&b, ", versions %s", counts(t.versions))
	}
	return b.String()
}

// counts renders m as "k1=n1 k2=n2", sorted by key.
func counts(m map[string]int) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
