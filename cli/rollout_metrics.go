package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
)

// What a rollout watches: the target subset's requests, scraped from every
// proxy's /metrics, and the verdict on their error rate.

// snapshot is what the proxies have counted of the requests sent to the
// --to subset: by proxy (workload ID), by response code, the counter values.
type snapshot struct {
	proxies map[string]map[string]float64
	// unreachable lists the proxies whose metrics could not be read.
	unreachable []string
}

// window is what the proxies sent to the --to subset between two snapshots.
type window struct {
	total, errors float64
	// codes counts requests by class: "2xx", "5xx"...
	codes map[string]float64
	// unreachable counts the proxies left out.
	unreachable int
}

// delta is what happened between two snapshots. A counter that went down
// was reset (its proxy restarted) and counts from zero; a proxy missing
// from start counts from zero too: its counters are new.
func delta(start, end snapshot) window {
	w := window{codes: map[string]float64{}, unreachable: len(end.unreachable)}
	for id, codes := range end.proxies {
		if slices.Contains(start.unreachable, id) {
			// No baseline: what it counted may predate the window.
			w.unreachable++
			continue
		}
		before := start.proxies[id]
		for code, v := range codes {
			d := v
			if b, ok := before[code]; ok && v >= b {
				d = v - b
			}
			if d <= 0 {
				continue
			}
			class := codeClass(code)
			w.codes[class] += d
			w.total += d
			if class == "5xx" || class == "other" {
				w.errors += d
			}
		}
	}
	return w
}

// codeClass is "2xx" for "200": a response's class, or "other" for a code
// that is none (a request that got no response).
func codeClass(code string) string {
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 || n > 599 {
		return "other"
	}
	return strconv.Itoa(n/100) + "xx"
}

func (w window) rate() float64 {
	if w.total == 0 {
		return 0
	}
	return w.errors / w.total
}

// verdict is the judgement of one window.
type verdict struct {
	window
	maxRate float64
	// judged is false when too few requests were sent to tell.
	judged, rollback bool
	minRequests      int
}

// judge decides whether a window's error rate calls for a rollback: only
// when at least minRequests were sent, and more than maxRate of them failed.
func judge(w window, maxRate float64, minRequests int) verdict {
	v := verdict{window: w, maxRate: maxRate, minRequests: minRequests}
	v.judged = w.total >= float64(minRequests) && w.total > 0
	v.rollback = v.judged && w.rate() > maxRate
	return v
}

// summary is "v2: 412 requests, 0.2% errors (threshold 1%)".
func (v verdict) summary(p *rolloutPlan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d requests, %s errors (threshold %s)", p.to, int64(v.total), formatRate(v.rate()), formatRate(v.maxRate))
	if v.errors > 0 {
		var classes []string
		for _, c := range slices.Sorted(maps.Keys(v.codes)) {
			if c == "5xx" || c == "other" {
				classes = append(classes, fmt.Sprintf("%d %s", int64(v.codes[c]), c))
			}
		}
		fmt.Fprintf(&b, " [%s]", strings.Join(classes, ", "))
	}
	if !v.judged {
		fmt.Fprintf(&b, ": fewer than %d requests, not judged", v.minRequests)
	} else if v.rollback {
		b.WriteString(": too many errors")
	}
	if v.unreachable > 0 {
		fmt.Fprintf(&b, " (metrics of %d proxies unavailable)", v.unreachable)
	}
	return b.String()
}

// formatRate prints a fraction as a percentage: 0.002 is "0.2%".
func formatRate(f float64) string {
	return strconv.FormatFloat(math.Round(f*1000)/10, 'f', -1, 64) + "%"
}

func percents(steps []int) string {
	s := make([]string, len(steps))
	for i, w := range steps {
		s[i] = strconv.Itoa(w) + "%"
	}
	return strings.Join(s, ", ")
}

// weights is "v1 75%, v2 25%".
func weights(p *rolloutPlan, w int) string {
	return fmt.Sprintf("%s %d%%, %s %d%%", p.from, 100-w, p.to, w)
}

// adminClient reads the proxies' admin endpoints: plain HTTP on addresses
// the proxies registered, never through an HTTP proxy.
var adminClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}}

// destination is the workloads whose requests a rollout watches.
type destination struct{ service, namespace, version string }

// scrapeSubset reads the metrics of every registered proxy that has an
// admin address and keeps the outbound requests to dst.
func scrapeSubset(ctx context.Context, c *client.Client, hc *http.Client, dst destination) (snapshot, error) {
	ws, err := c.Workloads(ctx, "", "")
	if err != nil {
		return snapshot{}, fmt.Errorf("list workloads: %w", err)
	}
	ws = slices.DeleteFunc(ws, func(w *meshv1.Workload) bool { return w.GetAdminAddress() == "" })
	snap := snapshot{proxies: make(map[string]map[string]float64, len(ws))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, scrapeConcurrency)
	for _, w := range ws {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			codes, err := scrapeProxy(ctx, hc, w.GetAdminAddress(), dst)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				snap.unreachable = append(snap.unreachable, w.GetId())
				return
			}
			snap.proxies[w.GetId()] = codes
		})
	}
	wg.Wait()
	slices.Sort(snap.unreachable)
	if err := ctx.Err(); err != nil {
		return snapshot{}, err
	}
	return snap, nil
}

// scrapeProxy reads one proxy's /metrics.
func scrapeProxy(ctx context.Context, hc *http.Client, admin string, dst destination) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	u := admin
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	return parseRequests(io.LimitReader(resp.Body, 64<<20), dst)
}

// parseRequests reads Prometheus text and returns, by response code, the
// weft_requests_total counters of outbound requests to dst, summed over
// every source and gRPC status.
func parseRequests(r io.Reader, dst destination) (map[string]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := map[string]float64{}
	fam, ok := families[requestsMetric]
	if !ok {
		return out, nil
	}
	for _, m := range fam.GetMetric() {
		var direction, code string
		var got destination
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "direction":
				direction = l.GetValue()
			case "destination_service":
				got.service = l.GetValue()
			case "destination_namespace":
				got.namespace = l.GetValue()
			case "destination_version":
				got.version = l.GetValue()
			case "response_code":
				code = l.GetValue()
			}
		}
		if direction != "outbound" || got != dst {
			continue
		}
		v := m.GetCounter().GetValue()
		if m.GetCounter() == nil {
			v = m.GetUntyped().GetValue()
		}
		out[code] += v
	}
	return out, nil
}
