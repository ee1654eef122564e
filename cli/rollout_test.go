package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
)

func TestParseRequests(t *testing.T) {
	f, err := os.Open("testdata/rollout/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseRequests(f, destination{"payments", "shop", "v2"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"200": 410, "404": 2, "503": 7}
	if !maps.Equal(got, want) {
		t.Errorf("parseRequests = %v, want %v", got, want)
	}
	if got, err := parseRequests(strings.NewReader("# TYPE x counter\nx 1\n"), destination{"payments", "shop", "v2"}); err != nil || len(got) != 0 {
		t.Errorf("without weft_requests_total: %v, %v; want nothing", got, err)
	}
	if _, err := parseRequests(strings.NewReader("weft_requests_total{ 1\n"), destination{}); err == nil {
		t.Error("malformed metrics: no error")
	}
}

func TestDeltaAndJudge(t *testing.T) {
	start := snapshot{
		proxies: map[string]map[string]float64{
			"web.shop@a": {"200": 100, "503": 1},
			"web.shop@b": {"200": 1000},
		},
		unreachable: []string{"web.shop@c"},
	}
	end := snapshot{
		proxies: map[string]map[string]float64{
			"web.shop@a": {"200": 190, "503": 3, "404": 5}, // +90 2xx, +2 5xx, +5 4xx
			"web.shop@b": {"200": 10},                      // restarted: counts from zero
			"web.shop@c": {"200": 500},                     // no baseline: left out
			"web.shop@d": {"200": 3, "0": 1},               // new: counts from zero
		},
		unreachable: []string{"web.shop@e"},
	}
	w := delta(start, end)
	if w.total != 111 || w.errors != 3 || w.unreachable != 2 ||
		!maps.Equal(w.codes, map[string]float64{"2xx": 103, "4xx": 5, "5xx": 2, "other": 1}) {
		t.Errorf("delta = %+v; want 111 requests, 3 errors, 2 proxies unreachable", w)
	}
	for _, tc := range []struct {
		name             string
		total, errors    float64
		maxRate          float64
		minRequests      int
		judged, rollback bool
	}{
		{"healthy", 1000, 5, 0.01, 20, true, false},
		{"at the threshold", 1000, 10, 0.01, 20, true, false},
		{"above the threshold", 1000, 11, 0.01, 20, true, true},
		{"too few requests", 19, 19, 0.01, 20, false, false},
		{"just enough requests", 20, 1, 0.01, 20, true, true},
		{"no traffic, no minimum", 0, 0, 0.01, 0, false, false},
		{"zero tolerance", 500, 1, 0, 20, true, true},
	} {
		v := judge(window{total: tc.total, errors: tc.errors}, tc.maxRate, tc.minRequests)
		if v.judged != tc.judged || v.rollback != tc.rollback {
			t.Errorf("%s: judged %v, rollback %v; want %v, %v", tc.name, v.judged, v.rollback, tc.judged, tc.rollback)
		}
	}
}

func TestRolloutFlags(t *testing.T) {
	for _, tc := range []struct {
		opts rolloutOptions
		want string
	}{
		{rolloutOptions{}, "--to is required"},
		{rolloutOptions{to: "v2", from: "v2"}, "both"},
		{rolloutOptions{to: "v2", steps: "10,5"}, "must increase"},
		{rolloutOptions{to: "v2", steps: "0,50"}, "from 1 to 100"},
		{rolloutOptions{to: "v2", steps: "10,x"}, "from 1 to 100"},
		{rolloutOptions{to: "v2", steps: "10", interval: 0, maxErrorRate: "1%"}, "--interval"},
		{rolloutOptions{to: "v2", steps: "10", interval: time.Second, maxErrorRate: "150%"}, "--max-error-rate"},
		{rolloutOptions{to: "v2", steps: "10", interval: time.Second, maxErrorRate: "1%", minRequests: -1}, "--min-requests"},
	} {
		if tc.opts.steps == "" {
			tc.opts.steps = defaultRolloutSteps
		}
		_, err := tc.opts.plan("payments")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.opts, err, tc.want)
		}
	}
	p, err := (&rolloutOptions{to: "v2", steps: "5%,50,100", interval: time.Minute, maxErrorRate: "0.5%", minRequests: 3}).plan("payments")
	if err != nil {
		t.Fatal(err)
	}
	if p.namespace != "default" || p.maxErrorRate != 0.005 || fmt.Sprint(p.steps) != "[5 50 100]" {
		t.Errorf("plan = %+v", p)
	}
}

// scripted is a rollout with fake proxies: each scrape returns the next
// snapshot, built from cumulative 2xx and 5xx counts of one proxy.
type scripted struct {
	counts  [][2]float64
	scrapes int
	applied []int
	// interruptAt cancels the context at that sleep (1-based); 0 never.
	interruptAt int
	sleeps      int
	// statuses, if any, are the Route's statuses, one per read; the last repeats.
	statuses []*client.RouteStatus
	reads    int
}

func (s *scripted) rollout(p *rolloutPlan, out io.Writer, cancel context.CancelFunc) *rollout {
	r := &rollout{
		plan: p, out: out, poll: 10 * time.Second, settleFor: 2 * time.Second,
		apply: func(w int) error { s.applied = append(s.applied, w); return nil },
		scrape: func(ctx context.Context) (snapshot, error) {
			if err := ctx.Err(); err != nil {
				return snapshot{}, err
			}
			c := s.counts[min(s.scrapes, len(s.counts)-1)]
			s.scrapes++
			return snapshot{proxies: map[string]map[string]float64{"web.shop@127.0.0.1:15006": {"200": c[0], "503": c[1]}}}, nil
		},
		sleep: func(ctx context.Context, d time.Duration) error {
			s.sleeps++
			if s.sleeps == s.interruptAt {
				cancel()
			}
			return ctx.Err()
		},
	}
	if len(s.statuses) > 0 {
		r.status = func(context.Context) (*client.RouteStatus, error) {
			st := s.statuses[min(s.reads, len(s.statuses)-1)]
			s.reads++
			return st, nil
		}
	}
	return r
}

func TestRolloutRun(t *testing.T) {
	n := func(i int) *int { return &i }
	plan := func() *rolloutPlan {
		return &rolloutPlan{service: "payments", namespace: "shop", from: "v1", to: "v2", steps: []int{10, 25, 50, 100},
			interval: 30 * time.Second, maxErrorRate: 0.01, minRequests: 20, route: "shop/payments"}
	}
	for _, tc := range []struct {
		name   string
		plan   *rolloutPlan
		script *scripted
		// applied are the weights of --to applied, in order.
		applied []int
	}{
		{
			name: "rollout-success", plan: plan(),
			// Three polls a step: baseline, then cumulative counts.
			script:  &scripted{counts: [][2]float64{{0, 0}, {100, 0}, {200, 1}, {410, 2}, {500, 2}, {800, 3}, {1200, 4}, {1300, 4}, {2000, 5}, {3000, 6}}},
			applied: []int{10, 25, 50, 100},
		},
		{
			name: "rollout-rollback", plan: plan(),
			// Step 2 fails at its first poll: 10 of 100 requests failed.
			script:  &scripted{counts: [][2]float64{{0, 0}, {100, 0}, {200, 1}, {410, 2}, {410, 2}, {500, 12}, {680, 32}}},
			applied: []int{10, 25, 0},
		},
		{
			name: "rollout-proxies", plan: func() *rolloutPlan { p := plan(); p.steps = []int{50, 100}; return p }(),
			script: &scripted{counts: [][2]float64{{0, 0}, {100, 0}, {200, 0}, {300, 0}}, statuses: []*client.RouteStatus{
				{Phase: client.RoutePending, Proxies: n(3), Applied: n(1)},
				{Phase: client.RouteApplied, Proxies: n(3), Applied: n(3)},
				{Phase: client.RoutePending, Proxies: n(3), Applied: n(2)}, // stays pending
			}},
			applied: []int{50, 100},
		},
		{
			name: "rollout-rejected", plan: plan(),
			script: &scripted{counts: [][2]float64{{0, 0}}, statuses: []*client.RouteStatus{
				{Phase: client.RouteRejected, Proxies: n(3), Applied: n(1), Errors: []string{
					`route "outbound|payments.shop": virtual_hosts[0].routes[0]: weighted_clusters: not supported`}},
			}},
			applied: []int{10, 0},
		},
		{
			name: "rollout-low-traffic", plan: func() *rolloutPlan { p := plan(); p.steps = []int{50, 100}; return p }(),
			script:  &scripted{counts: [][2]float64{{0, 0}, {3, 2}}},
			applied: []int{50, 100},
		},
		{
			name: "rollout-interrupted", plan: plan(),
			script:  &scripted{counts: [][2]float64{{0, 0}, {100, 0}, {200, 0}, {300, 0}, {350, 0}}, interruptAt: 5},
			applied: []int{10, 25},
		},
		{
			name: "rollout-partial", plan: func() *rolloutPlan { p := plan(); p.steps = []int{5, 20}; return p }(),
			script:  &scripted{counts: [][2]float64{{0, 0}, {50, 0}, {90, 0}, {150, 0}}},
			applied: []int{5, 20},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out bytes.Buffer
			err := tc.script.rollout(tc.plan, &out, cancel).run(ctx)
			fmt.Fprintf(&out, "--- error\n%v\n", err)
			checkGolden(t, tc.name, out.String())
			if fmt.Sprint(tc.script.applied) != fmt.Sprint(tc.applied) {
				t.Errorf("applied %v, want %v", tc.script.applied, tc.applied)
			}
		})
	}
}

// TestRolloutCommand runs weft rollout against the real API, with one
// registered proxy whose metrics a test server serves.
func TestRolloutCommand(t *testing.T) {
	var scrapes atomic.Int64
	var failing atomic.Bool
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		n := scrapes.Add(1)
		fmt.Fprintln(w, "# TYPE weft_requests_total counter")
		fmt.Fprintf(w, "weft_requests_total{direction=\"outbound\",destination_service=\"payments\",destination_namespace=\"shop\",destination_version=\"v2\",response_code=\"200\"} %d\n", 100*n)
		if failing.Load() {
			fmt.Fprintf(w, "weft_requests_total{direction=\"outbound\",destination_service=\"payments\",destination_namespace=\"shop\",destination_version=\"v2\",response_code=\"503\"} %d\n", 10*n)
		}
	}))
	t.Cleanup(metrics.Close)
	cfg := startRouteControlPlane(t, fakeRouteStatus{"shop/payments": {want: 1, applied: 1}},
		&meshv1.Workload{Id: "web.shop@127.0.2.1:15006", Service: "web", Namespace: "shop", Version: "v1",
			Address: "127.0.2.1:15006", AdminAddress: strings.TrimPrefix(metrics.URL, "http://"), Ready: true},
		&meshv1.Workload{Id: "web.shop@127.0.2.2:15006", Service: "web", Namespace: "shop", Version: "v1",
			Address: "127.0.2.2:15006", Ready: true}, // no admin address: not scraped
	)
	if code := RunWith([]string{"--config", cfg, "apply", "-f", "testdata/rollout/mesh.yaml"}, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("apply: exit %d", code)
	}
	fast := []string{"--interval", "1ms", "--steps", "50,100"}
	for _, c := range []struct {
		cliCase
		failing bool
	}{
		{cliCase: cliCase{golden: "rollout-no-policy", args: []string{"rollout", "ledger", "-n", "shop", "--to", "v2"}}},
		{cliCase: cliCase{golden: "rollout-missing-subset", args: []string{"rollout", "search", "-n", "shop", "--to", "v2"}}},
		{cliCase: cliCase{golden: "rollout-other-rules", args: []string{"rollout", "catalog", "-n", "shop", "--to", "canary", "--from", "stable"}}},
		{cliCase: cliCase{golden: "rollout-ambiguous-from", args: []string{"rollout", "catalog", "-n", "shop", "--to", "canary"}}},
		{cliCase: cliCase{golden: "rollout-bad-steps", args: []string{"rollout", "payments", "-n", "shop", "--to", "v2", "--steps", "50,10"}}},
		{cliCase: cliCase{golden: "rollout-no-to", args: []string{"rollout", "payments"}}},
		{cliCase: cliCase{golden: "rollout-command-rollback", args: append([]string{"rollout", "payments", "-n", "shop", "--to", "v2"}, fast...)}, failing: true},
		{cliCase: cliCase{golden: "rollout-command-rolled-back-route", args: []string{"get", "route", "payments", "-n", "shop", "-o", "yaml"}}},
		{cliCase: cliCase{golden: "rollout-command", args: append([]string{"rollout", "payments", "-n", "shop", "--to", "v2", "--max-error-rate", "0.5%"}, fast...)}},
		{cliCase: cliCase{golden: "rollout-command-route", args: []string{"get", "route", "payments", "-n", "shop", "-o", "yaml"}}},
	} {
		t.Run(c.golden, func(t *testing.T) {
			failing.Store(c.failing)
			c.args = append([]string{"--config", cfg}, c.args...)
			checkGolden(t, c.golden, run(t, c.cliCase))
		})
	}
	if scrapes.Load() == 0 {
		t.Error("the proxy's metrics were never read")
	}
}
