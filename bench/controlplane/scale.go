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
	"github.com/weftmesh/weft/api/xdsmeta"
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
	}
	r.log("  at rest: CPU %.3f cores, VmRSS %.0f MB (file-backed %.0f MB; Go heap in use %.0f MB, stacks %.0f MB of %.0f goroutines), VmHWM so far %.0f MB",
		r.out["rest_cpu"], r.out["rest_rss_mb"], r.out["rest_rss_file_mb"], r.out["rest_heap_mb"], r.out["rest_stack_mb"], r.out["rest_goroutines"], r.out["rest_hwm_mb"])
	if r.cfg.profileDir != "" && r.n == slices.Max(r.cfg.proxies) {
		path := filepath.Join(r.cfg.profileDir, fmt.Sprintf("heap-rest-n%d-%s.pprof", r.n, r.label))
		if err := cp.heapProfile(ctx, path); err != nil {
			r.log("  heap profile: %v", err)
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

// join starts a new proxy of s and times its registration to every proxy
// that routes to s.
func (r *scaleRun) join(ctx context.Context, kind string, s *service) (*event, error) {
	p := r.m.newProxy(s)
	if err := p.connect(ctx, joinTimeout); err != nil {
		p.close()
		return nil, err
	}
	ev := newEvent(kind)
	cluster, addr := s.outboundCluster(), p.addr()
	ev.detail = "join " + p.node.ID
	for _, sub := range r.m.subscribersOf(s) {
		ev.watchProxy(sub.ads, func(a *adsClient) bool { return hasEndpoint(a, cluster, addr) })
	}
	sent, err := p.register(ctx)
	if err != nil {
		ev.arm(time.Now())
		p.close()
		return nil, err
	}
	ev.arm(sent)
	p.joined = sent
	r.m.activate(p)
	return ev, nil
}

// leave removes an endpoint of s and times its removal at every proxy that
// routes to s.
func (r *scaleRun) leave(kind string, s *service) *event {
	// A proxy that joined a moment ago may not have reached every caller
	// yet; removing it then would time a change that never shows.
	eps := slices.DeleteFunc(r.m.endpointsOf(s), func(p *simProxy) bool { return time.Since(p.joined) < time.Second })
	if len(eps) == 0 {
		return nil
	}
	p := eps[r.m.intn(len(eps))]
	r.m.deactivate(p)
	ev := newEvent(kind)
	cluster, addr := s.outboundCluster(), p.addr()
	ev.detail = "leave " + p.node.ID
	for _, sub := range r.m.subscribersOf(s) {
		ev.watchProxy(sub.ads, func(a *adsClient) bool { return !hasEndpoint(a, cluster, addr) })
	}
	ev.arm(p.deregister())
	for _, w := range p.ads.dropWatches() {
		w.ev.leftEarly()
	}
	go p.close()
	return ev
}

// endpointEvents times workloads joining, then leaving, one at a time.
func (r *scaleRun) endpointEvents(ctx context.Context) {
	for _, kind := range []string{"join", "leave"} {
		var rs []result
		for range r.cfg.events {
			var ev *event
			var err error
			if kind == "join" {
				s := r.pickService(1)
				if s == nil {
					break
				}
				ev, err = r.join(ctx, kind, s)
			} else {
				s := r.pickService(3)
				if s == nil {
					break
				}
				ev = r.leave(kind, s)
			}
			if err != nil {
				r.log("  %s: %v", kind, err)
				continue
			}
			if ev == nil {
				continue
			}
			ev.wait(eventTimeout)
			rs = append(rs, ev.result())
			time.Sleep(time.Duration(20+r.m.intn(60)) * time.Millisecond)
		}
		r.logMissing(rs)
		s := summarize(kind, rs)
		r.out.putSummary(s)
		r.log("  %-6s %s", kind, describe(s))
	}
}

// configEvents times Service changes applied through the API: the protocol
// goes http -> http2 -> http (the service's own proxies get a new inbound
// cluster) and http -> tcp -> http (its own proxies get a new inbound
// listener, and every proxy that routes to it a new outbound listener).
func (r *scaleRun) configEvents(ctx context.Context) error {
	for _, kind := range []string{"http2", "tcp"} {
		var rs []result
		for range max(1, r.cfg.events/2) {
			s := r.pickService(1)
			if s == nil {
				break
			}
			for _, to := range []v1alpha1.Protocol{v1alpha1.Protocol(kind), v1alpha1.ProtocolHTTP} {
				ev := newEvent(kind)
				ev.detail = fmt.Sprintf("%s protocol %s", s.host(), to)
				if kind == "http2" {
					want := to == v1alpha1.ProtocolHTTP2
					for _, e := range r.m.endpointsOf(s) {
						ev.watchProxy(e.ads, func(a *adsClient) bool { return inboundHTTP2(a, s.inboundCluster()) == want })
					}
				} else {
					filter := "envoy.filters.network.http_connection_manager"
					if to == v1alpha1.ProtocolTCP {
						filter = "envoy.filters.network.tcp_proxy"
					}
					for _, e := range r.m.endpointsOf(s) {
						ev.watchProxy(e.ads, func(a *adsClient) bool { return listenerFilter(a, xdsmeta.InboundListener) == filter })
					}
					for _, sub := range r.m.subscribersOf(s) {
						name := ""
						for _, u := range sub.node.Upstreams {
							if u.Service == s.name && u.Namespace == s.ns {
								name = xdsmeta.OutboundListener(u.String())
							}
						}
						ev.watchProxy(sub.ads, func(a *adsClient) bool { return listenerFilter(a, name) == filter })
					}
				}
				s.protocol = to
				start := time.Now()
				if err := r.apply(ctx, []*service{s}); err != nil {
					return fmt.Errorf("apply %s protocol %s: %w", s.host(), to, err)
				}
				ev.arm(start)
				ev.wait(eventTimeout)
				rs = append(rs, ev.result())
				time.Sleep(time.Duration(20+r.m.intn(60)) * time.Millisecond)
			}
		}
		r.logMissing(rs)
		sm := summarize(kind, rs)
		r.out.putSummary(sm)
		r.log("  %-6s %s", kind, describe(sm))
	}
	return nil
}

// churn joins and removes endpoints, alternately, at the configured rate,
// timing each change at every proxy that routes to its service, and
// samples the control plane's memory and CPU meanwhile.
func (r *scaleRun) churn(ctx context.Context) error {
	cp := r.m.cp
	interval := time.Duration(float64(time.Second) / r.cfg.churnRate)
	var (
		mu      sync.Mutex
		evs     []*event
		failed  int
		wg      sync.WaitGroup
		ops     atomic.Int64
		inJoin  atomic.Int64
		skipped int
	)
	profErr := make(chan error, 1)
	if r.cfg.profileDir != "" && r.n == slices.Max(r.cfg.proxies) {
		d := max(time.Second, r.cfg.churnFor-2*time.Second)
		path := filepath.Join(r.cfg.profileDir, fmt.Sprintf("cpu-churn-n%d-%s.pprof", r.n, r.label))
		go func() { profErr <- cp.cpuProfile(ctx, d, path) }()
	} else {
		profErr <- nil
	}

	a, err := readProcStats(cp.pid())
	if err != nil {
		return err
	}
	self0, _ := readProcStats(os.Getpid())
	peak := a.rssKB
	stopSample := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSample:
				return
			case <-t.C:
				if st, err := readProcStats(cp.pid()); err == nil && st.rssKB > peak {
					peak = st.rssKB
				}
			}
		}
	})

	start := time.Now()
	tick := time.NewTicker(interval)
	joinNext := true
	for time.Since(start) < r.cfg.churnFor {
		<-tick.C
		if joinNext {
			s := r.pickService(1)
			if s == nil || inJoin.Load() > 64 {
				mu.Lock()
				skipped++
				mu.Unlock()
			} else {
				inJoin.Add(1)
				ops.Add(1)
				wg.Go(func() {
					defer inJoin.Add(-1)
					ev, err := r.join(ctx, "churn", s)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						failed++
						return
					}
					evs = append(evs, ev)
				})
			}
		} else {
			s := r.pickService(3)
			if s == nil {
				mu.Lock()
				skipped++
				mu.Unlock()
			} else if ev := r.leave("churn", s); ev != nil {
				ops.Add(1)
				mu.Lock()
				evs = append(evs, ev)
				mu.Unlock()
			} else {
				mu.Lock()
				skipped++
				mu.Unlock()
			}
		}
		joinNext = !joinNext
	}
	tick.Stop()
	elapsed := time.Since(start)
	b, err := readProcStats(cp.pid())
	if err != nil {
		return err
	}
	self1, _ := readProcStats(os.Getpid())
	close(stopSample)
	sampler.Wait()
	wg.Wait()
	var rs []result
	deadline := time.Now().Add(eventTimeout)
	for _, ev := range evs {
		ev.wait(max(0, time.Until(deadline)))
		rs = append(rs, ev.result())
	}
	if err := <-profErr; err != nil {
		r.log("  CPU profile: %v", err)
	}
	r.logMissing(rs)
	sm := summarize("churn", rs)
	r.out.putSummary(sm)
	r.out["churn_rate"] = float64(ops.Load()) / elapsed.Seconds()
	r.out["churn_cpu"] = cpuBetween(a, b)
	r.out["churn_bench_cpu"] = cpuBetween(self0, self1)
	r.out["churn_rss_peak_mb"] = float64(max(peak, b.rssKB)) / 1024
	r.out["churn_failed"] = float64(failed)
	r.log("  churn: %.1f changes/s for %v (%d skipped, %d failed joins): control plane CPU %.2f cores, peak VmRSS %.0f MB; bench process CPU %.2f cores",
		r.out["churn_rate"], elapsed.Round(time.Millisecond), skipped, failed, r.out["churn_cpu"], r.out["churn_rss_peak_mb"], r.out["churn_bench_cpu"])
	r.log("  churn  %s", describe(sm))
	return nil
}

// logMissing names the changes that did not reach every proxy in time.
func (r *scaleRun) logMissing(rs []result) {
	n := 0
	for _, res := range rs {
		if res.missing > 0 && n < 5 {
			r.log("  not everywhere within %v: %s (%d of %d proxies missing)", eventTimeout, res.detail, res.missing, res.expected)
			n++
		}
	}
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
