package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/xdsmeta"
)

// Helpers shared by the traffic-management tests (Route and DestinationPolicy).

// workload is one instance of a service: an in-process app behind its own sidecar.
type workload struct {
	name    string // service-version, what the app says it is
	service string
	version string
	ip      string
	app     *backend
	side    *sidecar
}

// startWorkloads starts one workload per version of service, waits until
// they are ready, and returns them in order. h, if not nil, makes the
// handler of each app from its name.
func startWorkloads(t *testing.T, cp *controlPlane, service string, versions []string, h func(name string) http.Handler) []*workload {
	t.Helper()
	var out []*workload
	for _, v := range versions {
		w := &workload{name: service + "-" + v, service: service, version: v, ip: nextIP()}
		var handler http.Handler
		if h != nil {
			handler = h(w.name)
		} else {
			handler = whoAmI(w.name)
		}
		w.app = startBackend(t, w.ip, w.name, handler)
		w.side = startMeshSidecar(t, cp, sidecarOpts{service: service, version: v, app: w.app.addr, ip: w.ip})
		out = append(out, w)
	}
	for _, w := range out {
		w.side.waitReady(t)
	}
	return out
}

// distinctAddrs returns n addresses on ip with distinct ports, each free a
// moment ago: it holds every port open until it has picked them all.
func distinctAddrs(t *testing.T, ip string, n int) []string {
	t.Helper()
	var out []string
	for range n {
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatalf("find a free port on %s: %v", ip, err)
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out
}

// startMeshControl is startControl with distinct ports.
func startMeshControl(t *testing.T) *controlPlane {
	t.Helper()
	ip := nextIP()
	a := distinctAddrs(t, ip, 3)
	cp := &controlPlane{dataDir: t.TempDir(), grpc: a[0], api: a[1], dash: a[2]}
	cp.proc = startProc(t, "control-"+ip, cp.args()...)
	cp.waitUp(t)
	return cp
}

// startMeshSidecar is startSidecar with distinct ports: picked one after
// another, two just-freed ports can be the same.
func startMeshSidecar(t *testing.T, cp *controlPlane, o sidecarOpts) *sidecar {
	t.Helper()
	if o.ip == "" {
		o.ip = nextIP()
	}
	n := 3 + len(o.upstreams) // inbound, admin, app (used only when o.app is empty), upstreams
	if o.httpProxy {
		n++
	}
	addrs := distinctAddrs(t, o.ip, n)
	pick := func() string {
		a := addrs[0]
		addrs = addrs[1:]
		return a
	}
	s := &sidecar{service: o.service, ip: o.ip, inbound: pick(), admin: pick(), upstreams: map[string]string{}}
	if o.token == "" {
		o.token = cp.token(t, o.service)
	}
	if app := pick(); o.app == "" {
		o.app = app
	}
	args := []string{"proxy", "--service", o.service, "--control", cp.grpc, "--token", o.token,
		"--ca-file", cp.caFile(), "--app", o.app, "--inbound", s.inbound, "--admin", s.admin, "--drain-delay", "300ms"}
	if o.version != "" {
		args = append(args, "--version", o.version)
	}
	for _, u := range o.upstreams {
		addr := pick()
		s.upstreams[u] = addr
		args = append(args, "--upstream", u+"="+addr)
	}
	if o.httpProxy {
		s.httpProxy = pick()
		args = append(args, "--http-proxy", s.httpProxy)
	}
	args = append(args, o.extra...)
	s.proc = startProc(t, o.service+"-"+o.ip, args...)
	return s
}

// whoAmI answers with the app's name, in the body and in x-backend.
func whoAmI(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("x-backend", name)
		io.WriteString(w, name)
	})
}

// startClient starts a client sidecar with the given upstreams and waits
// until it is ready.
func startClient(t *testing.T, cp *controlPlane, upstreams ...string) *sidecar {
	t.Helper()
	return startMeshSidecar(t, cp, sidecarOpts{service: "client", upstreams: upstreams}).waitReady(t)
}

// waitClusterSize waits until the sidecar's cluster lists exactly n endpoints.
func waitClusterSize(t *testing.T, s *sidecar, cluster string, n int) {
	t.Helper()
	eventually(t, 15*time.Second, fmt.Sprintf("%s has %d endpoints in %s", s.service, n, cluster), func() error {
		c := s.adminGet(t, "/clusters")
		if got := countEndpoints(c, cluster); got != n {
			return fmt.Errorf("%d endpoints:\n%s", got, c)
		}
		return nil
	})
}

// countEndpoints counts the distinct endpoint addresses /clusters lists
// for cluster, whether it prints one line per endpoint or one per stat.
func countEndpoints(clusters, cluster string) int {
	return len(endpointLines(clusters, cluster))
}

// endpointLines maps each endpoint address of cluster in /clusters to the
// rest of its lines.
func endpointLines(clusters, cluster string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(clusters, "\n") {
		rest, ok := strings.CutPrefix(line, cluster+"::")
		if !ok {
			continue
		}
		addr, tail, _ := strings.Cut(rest, "::")
		if _, _, err := net.SplitHostPort(addr); err != nil {
			continue
		}
		out[addr] += tail + "\n"
	}
	return out
}

// nodeStatus is the part of the control plane's /debug/proxies this file reads.
type nodeStatus struct {
	ID       string
	Versions map[string]string
	Acked    map[string]string
	LastNACK *struct {
		TypeURL string
		Message string
		At      time.Time
	}
}

func (cp *controlPlane) nodes(t testing.TB) []nodeStatus {
	t.Helper()
	resp, err := http.Get("http://" + cp.dash + "/debug/proxies")
	if err != nil {
		t.Fatalf("/debug/proxies: %v", err)
	}
	defer resp.Body.Close()
	var out []nodeStatus
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("/debug/proxies: %v", err)
	}
	return out
}

// applyConfig applies doc and waits until every sidecar in on has either
// accepted all the control plane sent it or NACKed something since the
// apply. A NACK fails the test, naming the field the proxy rejected.
func applyConfig(t *testing.T, cp *controlPlane, doc string, on ...*sidecar) {
	t.Helper()
	m := cp.mark(t, on...)
	cp.apply(t, doc)
	if msg := settle(t, cp, m); msg != "" {
		t.Fatalf("a proxy rejected the config (NACK of %s): %s", rejectedField(msg), msg)
	}
}

// configMark is what the control plane had sent some sidecars at a moment.
type configMark struct {
	since    time.Time
	versions map[string]map[string]string // node ID -> type URL -> version
}

// mark records the versions the control plane has handed the sidecars.
func (cp *controlPlane) mark(t *testing.T, on ...*sidecar) configMark {
	t.Helper()
	m := configMark{since: time.Now(), versions: map[string]map[string]string{}}
	for _, s := range on {
		m.versions[xdsmeta.WorkloadID(s.service, "default", s.inbound)] = nil
	}
	for _, n := range cp.nodes(t) {
		if _, ok := m.versions[n.ID]; ok {
			m.versions[n.ID] = n.Versions
		}
	}
	return m
}

// settle waits until each sidecar of m has acknowledged every version it
// was sent, once the control plane has sent something new (or, for a change
// that does not concern them, after a second), and returns the message of a
// NACK any of them sent after the mark.
func settle(t *testing.T, cp *controlPlane, m configMark) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var pending []string
	for time.Now().Before(deadline) {
		pending = pending[:0]
		seen, changed := 0, false
		for _, n := range cp.nodes(t) {
			before, ok := m.versions[n.ID]
			if !ok {
				continue
			}
			seen++
			if n.LastNACK != nil && n.LastNACK.At.After(m.since) {
				return n.LastNACK.Message
			}
			for typ, v := range n.Versions {
				if before[typ] != v {
					changed = true
				}
				if n.Acked[typ] != v {
					pending = append(pending, n.ID+" "+typ)
				}
			}
		}
		if seen == len(m.versions) && len(pending) == 0 && (changed || time.Since(m.since) > time.Second) {
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("config not acknowledged within 15s: %v", pending)
	return ""
}

// rejectedField reduces a NACK message to the resource and field it names.
func rejectedField(msg string) string {
	for _, suffix := range []string{": field is not supported by this proxy", " is not supported"} {
		if i := strings.Index(msg, suffix); i >= 0 {
			return msg[:i]
		}
	}
	return msg
}

// result is the outcome of one request.
type result struct {
	code    int
	backend string
	header  http.Header
	body    string
	elapsed time.Duration
	err     error
}

var trafficClient = &http.Client{
	Timeout: 20 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
	},
}

// do sends req and reads the whole answer.
func do(req *http.Request) result {
	start := time.Now()
	resp, err := trafficClient.Do(req)
	if err != nil {
		return result{err: err, elapsed: time.Since(start)}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return result{code: resp.StatusCode, backend: resp.Header.Get("x-backend"), header: resp.Header,
		body: string(b), elapsed: time.Since(start), err: err}
}

func doGet(url string, hdr ...string) result {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(req)
}

// tally counts results.
type tally struct {
	mu        sync.Mutex
	total     int
	ok        int
	codes     map[int]int
	backends  map[string]int
	errs      int
	samples   []string
	latencies []time.Duration
}

func newTally() *tally { return &tally{codes: map[int]int{}, backends: map[string]int{}} }

func (ta *tally) add(r result) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	ta.total++
	ta.latencies = append(ta.latencies, r.elapsed)
	if r.err != nil {
		ta.errs++
		if len(ta.samples) < 10 {
			ta.samples = append(ta.samples, r.err.Error())
		}
		return
	}
	ta.codes[r.code]++
	if r.code == 200 {
		ta.ok++
		ta.backends[r.backend]++
	} else if len(ta.samples) < 10 {
		ta.samples = append(ta.samples, fmt.Sprintf("%d %s %s", r.code, r.header.Get("x-weft-error"), strings.TrimSpace(r.body)))
	}
}

func (ta *tally) failed() int { return ta.total - ta.ok }

func (ta *tally) String() string {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return fmt.Sprintf("%d requests, %d ok, codes %v, errors %d, backends %v, samples %q",
		ta.total, ta.ok, ta.codes, ta.errs, ta.backends, ta.samples)
}

// share is the fraction of ok answers that came from backend.
func (ta *tally) share(backend string) float64 {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	if ta.ok == 0 {
		return 0
	}
	return float64(ta.backends[backend]) / float64(ta.ok)
}

// fire runs n requests on conc workers and tallies them.
func fire(n, conc int, send func(i int) result) *tally {
	ta := newTally()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ta.add(send(i))
			}
		}()
	}
	wg.Wait()
	return ta
}

// paced sends requests at rps per second for d, on up to conc workers.
// Requests start on schedule as long as a worker is free.
func paced(rps int, d time.Duration, conc int, send func(i int) result) *tally {
	ta := newTally()
	jobs := make(chan int, conc)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				ta.add(send(i))
			}
		}()
	}
	start := time.Now()
	interval := time.Second / time.Duration(rps)
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(at))
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return ta
}

// within reports whether got is within tol (both fractions) of want.
func within(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// countsOf formats a count map for messages.
func countsOf(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}
