package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/weftmesh/weft/api/client"
)

// TestDashboard runs `weft demo` and drives the control plane's dashboard
// in headless Chromium the way an operator would: the service graph fills
// with the demo's services and calls carrying traffic, a click on a
// service opens its page with golden metrics and instances, the keyboard
// reaches the graph's nodes, and the certificates page lists the mesh's
// root, and the live tap streams requests. With WEFT_UPDATE_SCREENSHOTS=1
// it saves a screenshot of each page as docs/dashboard-*.png.
func TestDashboard(t *testing.T) {
	chrome := chromiumPath()
	if chrome == "" {
		t.Skip("no Chromium binary (/usr/bin/chromium, or chromium on PATH): install Debian's chromium package to run the dashboard's browser test")
	}
	demo, demoDir, dashURL := startDemo(t)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1440, 1000), chromedp.UserDataDir(t.TempDir()))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	// The browser starts with the first action, and lives as long as the
	// context of that action.
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start %s: %v", chrome, err)
	}

	// Every uncaught exception of the pages, and every console.error, fails
	// the test.
	var (
		jsMu     sync.Mutex
		jsErrors []string
		jsDone   = make(chan struct{})
	)
	consoleCtx, stopConsole := context.WithCancel(browser)
	messages := chromedp.Console(consoleCtx)
	go func() {
		defer close(jsDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source == "") {
				jsMu.Lock()
				jsErrors = append(jsErrors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				jsMu.Unlock()
			}
		}
	}()
	defer func() {
		stopConsole()
		<-jsDone
		jsMu.Lock()
		defer jsMu.Unlock()
		for _, e := range jsErrors {
			t.Errorf("page error: %s", e)
		}
	}()

	// The bare port leads to the dashboard.
	root := strings.TrimSuffix(dashURL, "dashboard/")
	if err := chromedp.Do(browser, chromedp.Navigate(root)); err != nil {
		t.Fatalf("open %s: %v", root, err)
	}
	location, err := chromedp.Run(browser, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(location, "/dashboard/") {
		t.Errorf("%s led to %s, want the dashboard", root, location)
	}

	// The graph: every demo service, and the calls between them with traffic.
	type graphView struct {
		Nodes []string          `json:"nodes"`
		Edges map[string]string `json:"edges"` // "from>to" -> its label
		Rows  map[string]string `json:"rows"`  // the Calls table: "from>to" -> RPS cell
	}
	const readGraph = `(() => {
		const out = {nodes: [], edges: {}, rows: {}};
		for (const n of document.querySelectorAll('svg.graph-svg a.node[data-service]')) out.nodes.push(n.dataset.service);
		for (const e of document.querySelectorAll('svg.graph-svg g.edge[data-edge]')) out.edges[e.dataset.edge] = e.getAttribute('aria-label');
		for (const r of document.querySelectorAll('tr[data-edge]')) out.rows[r.dataset.edge] = r.cells[3].textContent;
		return out;
	})()`
	httpCalls := []string{"loadgen.default>frontend.default", "frontend.default>catalog.default", "frontend.default>ledger.default"}
	var g graphView
	browserEventually(t, browser, 150*time.Second, "the graph shows the demo's services and calls with traffic", func(ctx context.Context) error {
		if demo.exited() {
			t.Fatalf("demo exited: %v\n%s", demo.err, demo.output())
		}
		var err error
		if g, err = chromedp.Run(ctx, chromedp.Evaluate[graphView](readGraph)); err != nil {
			return err
		}
		for _, svc := range []string{"loadgen", "frontend", "catalog", "ledger", "cache"} {
			if !contains(g.Nodes, svc+".default") {
				return fmt.Errorf("no node for %s among %v", svc, g.Nodes)
			}
		}
		for _, call := range httpCalls {
			label, ok := g.Edges[call]
			if !ok {
				return fmt.Errorf("no edge %s among %v", call, g.Edges)
			}
			if rps, err := strconv.ParseFloat(g.Rows[call], 64); err != nil || rps <= 0 {
				return fmt.Errorf("call %s has rps %q (label %q)", call, g.Rows[call], label)
			}
			if !strings.Contains(label, "rps") || !strings.Contains(label, "p99") || !strings.Contains(label, "%") {
				return fmt.Errorf("edge %s says %q, want rps, success rate and p99", call, label)
			}
		}
		// cache speaks opaque TCP over long-lived connections: its edge
		// carries open connections, not requests.
		if label, ok := g.Edges["frontend.default>cache.default"]; !ok || !strings.Contains(label, "TCP") || !strings.Contains(label, "open") {
			return fmt.Errorf("edge frontend>cache says %q (present %v), want its open TCP connections", label, ok)
		}
		return nil
	})
	// The demo's traffic succeeds, so its calls are green.
	classes, err := chromedp.Run(browser, chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelectorAll('svg.graph-svg g.edge[data-edge]')].map((e) => [e.dataset.edge, e.getAttribute('class')]))`))
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range httpCalls {
		if !strings.Contains(classes[call], "h-healthy") {
			t.Errorf("edge %s is %q, want healthy (the demo's traffic succeeds)", call, classes[call])
		}
	}
	if updateScreenshots() {
		// Let the page gather some history, for sparklines worth a picture.
		time.Sleep(40 * time.Second)
	}
	saveScreenshot(t, browser, "dashboard-graph.png")

	// A click on a node opens the service's page.
	if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`svg.graph-svg a.node[data-service="catalog.default"]`))); err != nil {
		t.Fatalf("click catalog: %v", err)
	}
	type serviceView struct {
		Hash      string   `json:"hash"`
		Title     string   `json:"title"`
		RPS       string   `json:"rps"`
		Success   string   `json:"success"`
		P99       string   `json:"p99"`
		Sparks    int      `json:"sparks"`
		Instances []string `json:"instances"`
		Ready     []string `json:"ready"`
		Versions  []string `json:"versions"`
		Callers   string   `json:"callers"`
	}
	const readService = `(() => {
		const text = (sel) => { const e = document.querySelector(sel); return e ? e.textContent.trim() : ''; };
		return {
			hash: location.hash,
			title: text('main h1'),
			rps: text('.card[data-metric="rps"] .value'),
			success: text('.card[data-metric="success"] .value'),
			p99: text('.card[data-metric="p99"] .value'),
			sparks: document.querySelectorAll('.card svg.spark polyline').length,
			instances: [...document.querySelectorAll('tr[data-workload]')].map((r) => r.dataset.workload),
			ready: [...document.querySelectorAll('tr[data-workload]')].map((r) => r.cells[3].textContent),
			versions: [...document.querySelectorAll('section[aria-labelledby="versions-h"] tbody th')].map((c) => c.textContent),
			callers: text('section[aria-labelledby="traffic-h"]'),
		};
	})()`
	var s serviceView
	browserEventually(t, browser, 60*time.Second, "catalog's page shows its metrics and instances", func(ctx context.Context) error {
		var err error
		if s, err = chromedp.Run(ctx, chromedp.Evaluate[serviceView](readService)); err != nil {
			return err
		}
		if s.Hash != "#/service/default/catalog" || !strings.HasPrefix(s.Title, "catalog") {
			return fmt.Errorf("on %q titled %q", s.Hash, s.Title)
		}
		if rps, err := strconv.ParseFloat(s.RPS, 64); err != nil || rps <= 0 {
			return fmt.Errorf("rps %q", s.RPS)
		}
		if !strings.HasSuffix(s.Success, "%") || !strings.HasSuffix(s.P99, "ms") {
			return fmt.Errorf("success %q, p99 %q", s.Success, s.P99)
		}
		if len(s.Instances) != 2 || strings.Join(s.Ready, ",") != "ready,ready" {
			return fmt.Errorf("instances %v ready %v", s.Instances, s.Ready)
		}
		if strings.Join(s.Versions, ",") != "v1,v2" {
			return fmt.Errorf("versions %v", s.Versions)
		}
		if !strings.Contains(s.Callers, "frontend.default") {
			return fmt.Errorf("callers: %q", s.Callers)
		}
		// The history has at least two samples: the lines are drawn.
		if s.Sparks < 3 {
			return fmt.Errorf("%d sparklines drawn", s.Sparks)
		}
		return nil
	})

	// A Route and a DestinationPolicy applied with the CLI's API appear on
	// the page with their status, the Route's as the proxies report it.
	cfg, err := client.LoadConfig(filepath.Join(demoDir, "control", "config"))
	if err != nil {
		t.Fatal(err)
	}
	api, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Apply(ctx, []byte(catalogSplit), "dashboard-test"); err != nil {
		t.Fatalf("apply the catalog split: %v", err)
	}
	browserEventually(t, browser, 30*time.Second, "catalog's page shows its Route and DestinationPolicy", func(ctx context.Context) error {
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelectorAll('tr[data-policy]')].map((r) => [r.dataset.policy, [...r.cells].slice(2, 5).map((c) => c.textContent).join('|')]))`))
		if err != nil {
			return err
		}
		want := map[string]string{
			"Route/catalog":             "1 rule|Applied|1/1 applied",
			"DestinationPolicy/catalog": "2 subsets, roundRobin|Valid|not tracked",
		}
		for k, v := range want {
			if rows[k] != v {
				return fmt.Errorf("%s: %q, want %q (all: %v)", k, rows[k], v, rows)
			}
		}
		return nil
	})
	saveScreenshot(t, browser, "dashboard-service.png")

	// Back on the graph, the keyboard reaches a node and Enter opens it.
	browserEventually(t, browser, 30*time.Second, "a focused node opens with Enter", func(ctx context.Context) error {
		const node = chromedp.CSS(`svg.graph-svg a.node[data-service="frontend.default"]`)
		err := chromedp.Do(ctx,
			chromedp.Navigate(dashURL+"#/"),
			chromedp.WaitVisible(node),
			chromedp.Focus(node))
		if err != nil {
			return err
		}
		focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.dataset.service || ''`))
		if err != nil {
			return err
		}
		if err := chromedp.Do(ctx, chromedp.KeyEvent("\r"), chromedp.Sleep(300*time.Millisecond)); err != nil {
			return err
		}
		hash, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash`))
		if err != nil {
			return err
		}
		if focused != "frontend.default" || hash != "#/service/default/frontend" {
			return fmt.Errorf("focused %q, then at %q", focused, hash)
		}
		return nil
	})

	// The certificates page lists the mesh's root, valid and signing.
	if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`a[data-nav="certs"]`))); err != nil {
		t.Fatalf("open certificates: %v", err)
	}
	type certView struct {
		Summary string   `json:"summary"`
		Roots   []string `json:"roots"`
	}
	browserEventually(t, browser, 30*time.Second, "the certificates page lists the root", func(ctx context.Context) error {
		c, err := chromedp.Run(ctx, chromedp.Evaluate[certView](`({
			summary: document.querySelector('main .summary')?.textContent || '',
			roots: [...document.querySelectorAll('section[aria-labelledby="roots-h"] tr[data-cert]')].map((r) => [...r.cells].map((c) => c.textContent).join('|')),
		})`))
		if err != nil {
			return err
		}
		if !strings.Contains(c.Summary, "weft.local") || len(c.Roots) != 1 {
			return fmt.Errorf("summary %q, roots %v", c.Summary, c.Roots)
		}
		if cells := strings.Split(c.Roots[0], "|"); len(cells) < 5 || cells[1] != "valid" || cells[4] != "yes" {
			return fmt.Errorf("root row %q: want valid and signing", c.Roots[0])
		}
		return nil
	})
	saveScreenshot(t, browser, "dashboard-certs.png")
	if t.Failed() {
		return
	}

	// The live tap streams catalog's requests as they happen.
	if err := chromedp.Do(browser, chromedp.Navigate(dashURL+"#/tap/default/catalog")); err != nil {
		t.Fatalf("open the tap: %v", err)
	}
	browserEventually(t, browser, 30*time.Second, "the tap shows catalog's requests", func(ctx context.Context) error {
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('table.tap tbody tr')].map((r) => [...r.cells].map((c) => c.textContent).join('|'))`))
		if err != nil {
			return err
		}
		if len(rows) < 3 {
			return fmt.Errorf("%d requests shown", len(rows))
		}
		if cells := strings.Split(rows[0], "|"); len(cells) < 8 || cells[1] != "inbound" || !strings.HasPrefix(cells[4], "GET ") || cells[5] != "200" || cells[7] != "yes" {
			return fmt.Errorf("newest request %q: want an inbound GET answered 200 over mTLS", rows[0])
		}
		return nil
	})
	saveScreenshot(t, browser, "dashboard-tap.png")

	// The JSON the pages read is served beside them, without credentials,
	// and never hands out a credential header.
	resp, err := http.Get(dashURL + "api/graph")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Telemetry struct {
			Available bool `json:"available"`
		} `json:"telemetry"`
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !body.Telemetry.Available {
		t.Errorf("GET api/graph: %s, %v, telemetry %+v", resp.Status, err, body.Telemetry)
	}

	demo.signal(syscall.SIGINT)
	select {
	case <-demo.done:
	case <-time.After(60 * time.Second):
		t.Error("demo did not stop within 60s of Ctrl-C")
	}
}

// catalogSplit sends catalog's requests half to v1 and half to v2, as the
// demo's traffic goes without it.
const catalogSplit = `apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: catalog}
spec:
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
  - name: split
    backends: [{subset: v1, weight: 50}, {subset: v2, weight: 50}]
`

// startDemo runs `weft demo` and returns it with the dashboard URL it
// prints. The demo's ports are fixed, so while another demo holds them
// (another test, or a person's) it waits and tries again.
func startDemo(t *testing.T) (p *proc, dir, dashURL string) {
	t.Helper()
	urlLine := regexp.MustCompile(`dashboard\s+(http://\S+/dashboard/)`)
	deadline := time.Now().Add(3 * time.Minute)
	for attempt := 1; ; attempt++ {
		dir = t.TempDir()
		p = startProc(t, fmt.Sprintf("demo-%d", attempt), "demo", "--dir", dir, "--rps", "20")
		for {
			out := p.output()
			if m := urlLine.FindStringSubmatch(out); m != nil && strings.Contains(out, "mesh ready") {
				return p, dir, m[1]
			}
			if p.exited() {
				if strings.Contains(out, "is in use") && time.Now().Before(deadline) {
					t.Logf("the demo's ports are taken; trying again in 5s")
					time.Sleep(5 * time.Second)
					break
				}
				t.Fatalf("demo exited before the mesh was ready: %v\n%s", p.err, out)
			}
			if time.Now().After(deadline) {
				t.Fatalf("demo not ready within 3 minutes:\n%s", out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// browserEventually calls f every half second, each call bounded, until it
// succeeds or limit passes.
func browserEventually(t *testing.T, browser context.Context, limit time.Duration, what string, f func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(browser, 10*time.Second)
		err = f(ctx)
		cancel()
		if err == nil {
			return
		}
		if errors.Is(browser.Err(), context.Canceled) || errors.Is(browser.Err(), context.DeadlineExceeded) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, limit, err)
}

// saveScreenshot writes docs/<name> when WEFT_UPDATE_SCREENSHOTS=1.
func saveScreenshot(t *testing.T, browser context.Context, name string) {
	t.Helper()
	if !updateScreenshots() {
		return
	}
	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join("..", "..", "docs", name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("save %s: %v", path, err)
	}
	t.Logf("saved %s", path)
}

func updateScreenshots() bool { return os.Getenv("WEFT_UPDATE_SCREENSHOTS") == "1" }

// chromiumPath finds a Chromium to drive: Debian's first.
func chromiumPath() string {
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
