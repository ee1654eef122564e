package telemetry

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/weftmesh/weft/api/client"
)

// acc accumulates counter deltas for one service, edge or workload.
type acc struct {
	requests, rps     float64
	successes, mtls   float64
	hist              histogram
	tcpOpened         float64
	tcpOpen           float64
	bytesSent, bytesR float64
}

func (a *acc) golden() client.Golden {
	g := client.Golden{
		Requests: a.requests, RPS: round(a.rps, 3),
		TCPConnections: a.tcpOpened, TCPOpen: a.tcpOpen, BytesSent: a.bytesSent, BytesReceived: a.bytesR,
	}
	if a.requests > 0 {
		g.SuccessRate = ptr(round(a.successes/a.requests, 4))
		g.MTLSShare = ptr(round(a.mtls/a.requests, 4))
		if a.hist != nil {
			for q, dst := range map[float64]**float64{0.5: &g.P50Ms, 0.95: &g.P95Ms, 0.99: &g.P99Ms} {
				if v := a.hist.quantile(q); !math.IsNaN(v) {
					*dst = ptr(round(v*1000, 3))
				}
			}
		}
	}
	return g
}

func ptr(v float64) *float64 { return &v }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func name(svc, ns string) string {
	if svc == "" {
		return "unknown"
	}
	return svc + "." + ns
}

// Stats computes golden metrics over the last window from each proxy's
// samples: the latest one against the newest one at least window old (or
// the oldest kept, for a proxy younger than the window).
func (a *Aggregator) Stats(window time.Duration) (*client.Stats, error) {
	if window <= 0 {
		return nil, fmt.Errorf("telemetry: window must be positive, got %s", window)
	}
	if window > a.opts.History {
		return nil, fmt.Errorf("telemetry: window %s is longer than the %s of history kept", window, a.opts.History)
	}
	now := a.opts.Now()
	a.mu.Lock()
	defer a.mu.Unlock()

	type svcKey struct{ ns, name string }
	services := map[svcKey]*acc{}
	instances := map[svcKey]int{}
	versions := map[svcKey]map[string]bool{}
	edges := map[[2]string]*acc{}
	out := &client.Stats{Window: window.String(), At: now.UTC(), Services: []client.ServiceStats{}, Edges: []client.EdgeStats{}, Workloads: []client.WorkloadStats{}}

	ids := make([]string, 0, len(a.workloads))
	for id := range a.workloads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		h := a.workloads[id]
		w := h.w
		sk := svcKey{w.GetNamespace(), w.GetService()}
		if services[sk] == nil {
			services[sk] = &acc{}
			versions[sk] = map[string]bool{}
		}
		ws := client.WorkloadStats{ID: id, Service: w.GetService(), Namespace: w.GetNamespace(), Version: w.GetVersion(), Address: w.GetAddress()}
		if h.lastErr != nil {
			ws.Error = h.lastErr.Error()
		}
		if len(h.samples) > 0 {
			instances[sk]++
			if v := w.GetVersion(); v != "" {
				versions[sk][v] = true
			}
		}
		wacc := &acc{}
		if len(h.samples) >= 2 {
			cur, base := h.window(now, window)
			secs := cur.at.Sub(base.at).Seconds()
			self := name(w.GetService(), w.GetNamespace())
			for k, v := range cur.s.requests {
				if k.direction != directionInbound {
					continue
				}
				prev, ok := base.s.requests[k]
				d := counterDelta(v, prev, ok)
				if d == 0 {
					continue
				}
				ek := [2]string{name(k.srcSvc, k.srcNS), self}
				if edges[ek] == nil {
					edges[ek] = &acc{}
				}
				for _, t := range []*acc{wacc, services[sk], edges[ek]} {
					t.addRequests(d, secs, k)
				}
			}
			for k, hist := range cur.s.latency {
				if k.direction != directionInbound {
					continue
				}
				d := hist.delta(base.s.latency[k])
				ek := [2]string{name(k.srcSvc, k.srcNS), self}
				for _, t := range []*acc{wacc, services[sk], edges[ek]} {
					if t == nil {
						continue
					}
					if t.hist == nil {
						t.hist = histogram{}
					}
					t.hist.add(d)
				}
			}
			for k, c := range cur.s.tcp {
				if k.direction != directionInbound {
					continue
				}
				p := base.s.tcp[k]
				if p == nil {
					p = &tcpCounts{}
				}
				hadPrev := base.s.tcp[k] != nil
				ek := [2]string{name(k.srcSvc, k.srcNS), self}
				if edges[ek] == nil {
					edges[ek] = &acc{}
				}
				for _, t := range []*acc{wacc, services[sk], edges[ek]} {
					// Long-lived connections open before the window count
					// too: they are traffic even when none opened in it.
					t.tcpOpen += max(0, c.opened-c.closed)
					t.tcpOpened += counterDelta(c.opened, p.opened, hadPrev)
					t.bytesSent += counterDelta(c.sent, p.sent, hadPrev)
					t.bytesR += counterDelta(c.received, p.received, hadPrev)
				}
			}
		}
		ws.Golden = wacc.golden()
		out.Workloads = append(out.Workloads, ws)
	}

	for k, s := range services {
		ss := client.ServiceStats{Namespace: k.ns, Name: k.name, Golden: s.golden(), Instances: instances[k]}
		for v := range versions[k] {
			ss.Versions = append(ss.Versions, v)
		}
		slices.Sort(ss.Versions)
		out.Services = append(out.Services, ss)
	}
	sort.Slice(out.Services, func(i, j int) bool {
		a, b := out.Services[i], out.Services[j]
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})
	for k, e := range edges {
		if e.requests == 0 && e.tcpOpened == 0 && e.tcpOpen == 0 && e.bytesSent == 0 && e.bytesR == 0 {
			continue
		}
		out.Edges = append(out.Edges, client.EdgeStats{From: k[0], To: k[1], Golden: e.golden()})
	}
	sort.Slice(out.Edges, func(i, j int) bool {
		a, b := out.Edges[i], out.Edges[j]
		return a.To < b.To || a.To == b.To && a.From < b.From
	})
	return out, nil
}

func (a *acc) addRequests(d, secs float64, k reqKey) {
	a.requests += d
	if secs > 0 {
		a.rps += d / secs
	}
	if success(k.code, k.grpc) {
		a.successes += d
	}
	if k.mtls == "true" {
		a.mtls += d
	}
}

// window returns the latest sample and the base to subtract: the newest
// sample taken at least window before it, or the oldest kept.
func (h *workloadHistory) window(now time.Time, window time.Duration) (cur, base timedSample) {
	cur = h.samples[len(h.samples)-1]
	base = h.samples[0]
	cut := cur.at.Add(-window)
	for _, s := range h.samples[:len(h.samples)-1] {
		if s.at.After(cut) {
			break
		}
		base = s
	}
	return cur, base
}
