package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// metrics are one run's numbers by name; runs of one configuration are
// summarised by the median of each.
type metrics map[string]float64

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (m metrics) putSummary(s summary) {
	k := s.kind
	m[k+".events"] = float64(s.events)
	m[k+".complete"] = float64(s.complete)
	m[k+".fanout"] = s.fanout
	m[k+".missing"] = float64(s.missing)
	m[k+".acks"] = float64(s.proxies)
	m[k+".all.p50"] = ms(s.allDist.p50)
	m[k+".all.p99"] = ms(s.allDist.p99)
	m[k+".all.max"] = ms(s.allDist.maxd)
	m[k+".each.p50"] = ms(s.eachDist.p50)
	m[k+".each.p99"] = ms(s.eachDist.p99)
	m[k+".each.max"] = ms(s.eachDist.maxd)
}

// scaleRun is one control plane with n simulated proxies.
type scaleRun struct {
	cfg   *config
	bin   string
	n     int
	log   func(format string, args ...any)
	m     *mesh
	out   metrics
	label string
}

const (
	eventTimeout = 30 * time.Second
	joinTimeout  = 60 * time.Second
)

func (r *scaleRun) run(ctx context.Context) (metrics, error) {
	r.out = metrics{}
	dir, err := os.MkdirTemp(r.cfg.workDir, fmt.Sprintf("n%d-%s-", r.n, r.label))
	if err != nil {
		return nil, err
	}
	cp, err := startControlPlane(ctx, r.bin, dir)
	if err != nil {
		return nil, err
	}
	defer cp.stop()
	r.m = &mesh{cp: cp, rng: rand.New(rand.NewPCG(r.cfg.seed, uint64(r.n))), proxies: map[int]*simProxy{}}
	defer r.teardown()

	if err := r.setup(ctx); err != nil {
		return nil, fmt.Errorf("setup: %w; control plane log:\n%s", err, cp.logTail(2000))
	}
	if err := r.rest(ctx); err != nil {
		return nil, err
	}
	r.endpointEvents(ctx)
	if err := r.configEvents(ctx); err != nil {
		return nil, err
	}
	if err := r.routeEvents(ctx); err != nil {
		return nil, err
	}
	if err := r.churn(ctx); err != nil {
		return nil, err
	}
	if st, err := readProcStats(cp.pid()); err == nil {
		r.out["hwm_mb"] = float64(st.hwmKB) / 1024
	}
	return r.out, nil
}

func (r *scaleRun) teardown() {
	r.m.mu.Lock()
	ps := make([]*simProxy, 0, len(r.m.proxies))
	for _, p := range r.m.proxies {
		ps = append(ps, p)
	}
	r.m.proxies = map[int]*simProxy{}
	r.m.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, p := range ps {
		sem <- struct{}{}
		wg.Go(func() { defer func() { <-sem }(); p.close() })
	}
	wg.Wait()
}

// setup applies the services, creates their join tokens and starts the
// proxies, each an endpoint of its service, then waits until every proxy
// sees every endpoint of its upstreams.
func (r *scaleRun) setup(ctx context.Context) error {
	cp := r.m.cp
	nServices := r.cfg.services
	for i := range nServices {
		r.m.services = append(r.m.services, &service{
			idx: i, ns: fmt.Sprintf("ns%d", i%10), name: fmt.Sprintf("svc-%04d", i), protocol: v1alpha1.ProtocolHTTP,
		})
	}
	for i := 0; i < len(r.m.services); i += 100 {
		if err := r.apply(ctx, r.m.services[i:min(i+100, len(r.m.services))]); err != nil {
			return err
		}
	}
	// Endpoints: 2 to 5 per service, as many services as the proxies fill.
	populated := min(nServices, r.n/2)
	counts := make([]int, populated)
	left := r.n
	for i := range counts {
		counts[i] = 2
		left -= 2
	}
	for left > 0 && populated > 0 {
		i := r.m.intn(populated)
		if counts[i] < 5 || !slices.ContainsFunc(counts, func(c int) bool { return c < 5 }) {
			counts[i]++
			left--
		}
	}
	r.m.populated = r.m.services[:populated]
	var plan []*service
	for i, c := range counts {
		for range c {
			plan = append(plan, r.m.services[i])
		}
	}
	rand.New(rand.NewPCG(r.cfg.seed, 7)).Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })

	tokStart := time.Now()
	if err := parallel(ctx, 8, r.m.populated, func(ctx context.Context, s *service) error {
		tok, err := cp.api.CreateToken(ctx, s.name, s.ns, 24*time.Hour)
		s.token = tok.Token
		return err
	}); err != nil {
		return fmt.Errorf("create join tokens: %w", err)
	}
	r.log("  %d services applied, %d join tokens in %v", nServices, populated, time.Since(tokStart).Round(time.Millisecond))

	if r.cfg.profileDir != "" && r.n == slices.Max(r.cfg.proxies) {
		path := filepath.Join(r.cfg.profileDir, fmt.Sprintf("cpu-setup-n%d-%s.pprof", r.n, r.label))
		go func() {
			if err := cp.cpuProfile(ctx, 10*time.Second, path); err != nil {
				r.log("  CPU profile: %v", err)
			}
		}()
	}
	before, _ := readProcStats(cp.pid())
	start := time.Now()
	var done atomic.Int64
	stopProgress := r.progress("proxies up", &done, r.n)
	err := parallel(ctx, r.cfg.setupConc, plan, func(ctx context.Context, s *service) error {
		p := r.m.newProxy(s)
		if err := p.connect(ctx, joinTimeout); err != nil {
			p.close()
			return err
		}
		if _, err := p.register(ctx); err != nil {
			p.close()
			return err
		}
		p.joined = time.Now()
		r.m.activate(p)
		done.Add(1)
		return nil
	})
	stopProgress()
	if err != nil {
		return err
	}
	up := time.Since(start)
	deadline := time.Now().Add(180 * time.Second)
	for {
		bad := r.m.unconverged()
		if bad == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d proxies still do not see every endpoint of their upstreams after 180s", bad)
		}
		time.Sleep(100 * time.Millisecond)
	}
	converged := time.Since(start)
	after, _ := readProcStats(cp.pid())
	r.out["setup_s"] = up.Seconds()
	r.out["converge_s"] = converged.Seconds()
	r.out["setup_cp_cpu_s"] = after.cpuSeconds - before.cpuSeconds
	r.out["populated"] = float64(populated)
	r.log("  %d proxies connected and registered in %v, all endpoints everywhere after %v (control plane CPU %.1fs)",
		r.n, up.Round(time.Millisecond), converged.Round(time.Millisecond), after.cpuSeconds-before.cpuSeconds)
	return nil
}

func (r *scaleRun) progress(what string, done *atomic.Int64, total int) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				r.log("  ... %s: %d/%d", what, done.Load(), total)
			}
		}
	})
	return func() { close(stop); wg.Wait() }
}

// apply sends the Service resources of svcs, as they are now, in one apply.
func (r *scaleRun) apply(ctx context.Context, svcs []*service) error {
	var b strings.Builder
	for _, s := range svcs {
		fmt.Fprintf(&b, "apiVersion: %s\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  ports:\n  - port: 8080\n    protocol: %s\n---\n",
			v1alpha1.APIVersion, s.name, s.ns, s.protocol)
	}
	_, err := r.m.cp.api.Apply(ctx, []byte(b.String()), "bench")
	return err
}

// rest measures the control plane idle with every proxy connected.
func (r *scaleRun) rest(ctx context.Context) error {
	cp := r.m.cp
	time.Sleep(r.cfg.settle)
	a, err := readProcStats(cp.pid())
	if err != nil {
		return err
	}
	time.Sleep(r.cfg.restFor)
	b, err := readProcStats(cp.pid())
	if err != nil {
		return err
	}
	r.out["rest_cpu"] = cpuBetween(a, b)
	r.out["rest_rss_mb"] = float64(b.rssKB) / 1024
	r.out["rest_hwm_mb"] = float64(b.hwmKB) / 1024
	r.out["rest_rss_file_mb"] = float64(b.rssFileKB) / 1024
	if g, err := cp.goMemory(ctx); err == nil {
		r.out["rest_heap_mb"] = g["heap_inuse"] / (1 << 20)
		r.out["rest_stack_mb"] = g["stack_inuse"] / (1 << 20)
		r.out["rest_goroutines"] = g["goroutines"]
		r.out["rest_heap_retained_mb"] = (g["heap_idle"] - g["heap_released"]) / (1 << 20)
		r.out["rest_runtime_mb"] = (g["gc_sys"] + g["other_sys"] + g["mspan_inuse"]) / (1 << 20)
	}
	// After the figures above, which the GC's timing moves by up to the
	// live heap's own size: what a collection leaves is what the control
	// plane holds.
	if live, err := cp.liveHeap(ctx); err == nil {
		r.out["rest_live_mb"] = live / (1 << 20)
	} else {
		r.log("  live heap: %v", err)
	}
	r.log("  at rest: CPU %.3f cores, VmRSS %.0f MB (file-backed %.0f MB; Go heap in use %.0f MB, live after a GC %.0f MB, free but not returned %.0f MB, stacks %.0f MB of %.0f goroutines, runtime metadata %.0f MB), VmHWM so far %.0f MB",
		r.out["rest_cpu"], r.out["rest_rss_mb"], r.out["rest_rss_file_mb"], r.out["rest_heap_mb"], r.out["rest_live_mb"], r.out["rest_heap_retained_mb"], r.out["rest_stack_mb"], r.out["rest_goroutines"], r.out["rest_runtime_mb"], r.out["rest_hwm_mb"])
	if r.cfg.profileDir != "" && r.n == slices.Max(r.cfg.proxies) {
		path := filepath.Join(r.cfg.profileDir, fmt.Sprintf("heap-rest-n%d-%s.pprof", r.n, r.label))
		if err := cp.heapProfile(ctx, path); err != nil {
			r.log("  heap profile: %v", err)
		}
		path = filepath.Join(r.cfg.profileDir, fmt.Sprintf("goroutine-rest-n%d-%s.pprof", r.n, r.label))
		if err := cp.goroutineProfile(ctx, path); err != nil {
			r.log("  goroutine profile: %v", err)
		}
	}
	return nil
}

// pickService returns a populated service with subscribers and at least
// minEndpoints endpoints, or nil.
func (r *scaleRun) pickService(minEndpoints int) *service {
	m := r.m
	m.mu.Lock()
	var cands []*service
	for _, s := range m.populated {
		if len(s.subscribers) > 0 && len(s.endpoints) >= minEndpoints {
			cands = append(cands, s)
		}
	}
	m.mu.Unlock()
	if len(cands) == 0 {
		return nil
	}
	return cands[m.intn(len(cands))]
}

func describe(s summary) string {
	if s.events == 0 {
		return "no events"
	}
	return fmt.Sprintf("%d events (%d complete), %.1f proxies each, %d timed ACKs, %d missing: all-proxies p50 %.0fms p99 %.0fms max %.0fms; per proxy p50 %.0fms p99 %.0fms max %.0fms",
		s.events, s.complete, s.fanout, s.proxies, s.missing,
		ms(s.allDist.p50), ms(s.allDist.p99), ms(s.allDist.maxd), ms(s.eachDist.p50), ms(s.eachDist.p99), ms(s.eachDist.maxd))
}

// parallel runs f on every item with at most n at a time and returns the first error.
func parallel[T any](parent context.Context, n int, items []T, f func(context.Context, T) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	sem := make(chan struct{}, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(ctx, it); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first == nil {
		return parent.Err()
	}
	return first
}
