package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// The changes a scale run makes and times: endpoints joining and leaving,
// Service applies, and churn.

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
			rs = append(rs, r.await(ev))
		}
		r.summarizeKind(kind, rs)
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
				rs = append(rs, r.await(ev))
			}
		}
		r.summarizeKind(kind, rs)
	}
	return nil
}

// routeEvents times Route changes applied through the API, as a canary
// rollout makes them: a Route for a service appears with a 90/10 split
// between it and a sibling service of its namespace, its weights move to
// 50/50, and it is deleted. Each change reaches the route configuration of
// every proxy that calls the service.
func (r *scaleRun) routeEvents(ctx context.Context) error {
	const kind = "route"
	var rs []result
	for i := range max(1, r.cfg.events/3) {
		var s, t *service
		for range 20 {
			if s = r.pickService(1); s != nil {
				t = r.m.sibling(s)
			}
			if t != nil {
				break
			}
		}
		if t == nil {
			break
		}
		name := fmt.Sprintf("bench-%d", i)
		routeName, canary := xdsmeta.OutboundRoute(s.name, s.ns), t.outboundCluster()
		for _, w := range []int{10, 50, 0} {
			ev := newEvent(kind)
			ev.detail = fmt.Sprintf("Route %s/%s: %s gets %d%%", s.ns, name, t.name, w)
			if w == 0 {
				ev.detail = fmt.Sprintf("Route %s/%s deleted", s.ns, name)
			}
			for _, sub := range r.m.subscribersOf(s) {
				ev.watchProxy(sub.ads, func(a *adsClient) bool { return canaryWeight(a, routeName, canary) == w })
			}
			start := time.Now()
			var err error
			if w == 0 {
				err = r.m.cp.api.Delete(ctx, "Route", s.ns, name)
			} else {
				_, err = r.m.cp.api.Apply(ctx, []byte(canaryRoute(name, s, t, w)), "bench")
			}
			if err != nil {
				return fmt.Errorf("%s: %w", ev.detail, err)
			}
			ev.arm(start)
			rs = append(rs, r.await(ev))
		}
	}
	r.summarizeKind(kind, rs)
	return nil
}

// await waits for an armed event to reach every proxy it watches (or time
// out), then pauses a little, so that changes made one at a time do not
// meet at the control plane's debounce.
func (r *scaleRun) await(ev *event) result {
	ev.wait(eventTimeout)
	res := ev.result()
	time.Sleep(time.Duration(20+r.m.intn(60)) * time.Millisecond)
	return res
}

// summarizeKind logs and records what the changes of one kind measured.
func (r *scaleRun) summarizeKind(kind string, rs []result) {
	r.logMissing(rs)
	sm := summarize(kind, rs)
	r.out.putSummary(sm)
	r.log("  %-6s %s", kind, describe(sm))
}

// canaryRoute is a Route for s that sends pct percent of its requests to t.
func canaryRoute(name string, s, t *service, pct int) string {
	return fmt.Sprintf(`apiVersion: %s
kind: Route
metadata:
  name: %s
  namespace: %s
spec:
  service: %s
  rules:
  - name: canary
    backends:
    - {service: %s, weight: %d}
    - {service: %s, weight: %d}
`, v1alpha1.APIVersion, name, s.ns, s.name, s.name, 100-pct, t.name, pct)
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
	r.out["churn_rate"] = float64(ops.Load()) / elapsed.Seconds()
	r.out["churn_cpu"] = cpuBetween(a, b)
	r.out["churn_bench_cpu"] = cpuBetween(self0, self1)
	r.out["churn_rss_peak_mb"] = float64(max(peak, b.rssKB)) / 1024
	r.out["churn_failed"] = float64(failed)
	r.log("  churn: %.1f changes/s for %v (%d skipped, %d failed joins): control plane CPU %.2f cores, peak VmRSS %.0f MB; bench process CPU %.2f cores",
		r.out["churn_rate"], elapsed.Round(time.Millisecond), skipped, failed, r.out["churn_cpu"], r.out["churn_rss_peak_mb"], r.out["churn_bench_cpu"])
	r.summarizeKind("churn", rs)
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
