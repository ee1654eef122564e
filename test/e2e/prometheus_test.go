package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPrometheus runs the real Prometheus against a small mesh: it finds
// the proxies through the control plane's HTTP service discovery (the
// configuration `weft prometheus-config` prints), scrapes them, and its
// queries of the pair's request rate and p99 latency match the traffic the
// test sends: 20 requests a second, one in ten of which the server holds
// for 150 ms.
func TestPrometheus(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (apt-get install prometheus): skipping the Prometheus scrape test")
	}
	const (
		rps      = 20
		slowEach = 10 // one request in slowEach is slow
		slowFor  = 150 * time.Millisecond
	)
	cp := startControl(t, controlOpts{})
	serverIP := nextIP()
	var n atomic.Int64
	app := startBackend(t, serverIP, "server", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%slowEach == 0 {
			time.Sleep(slowFor)
		}
		io.WriteString(w, "ok")
	}))
	server := startSidecar(t, cp, sidecarOpts{service: "server", version: "v1", app: app.addr, ip: serverIP})
	client := startSidecar(t, cp, sidecarOpts{service: "client", version: "v1", upstreams: []string{"server"}})
	server.waitReady(t)
	client.waitReady(t)
	waitEndpoints(t, client, "server")

	// The scrape configuration, as an operator would make it.
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	out, err := exec.Command(weftBin, "prometheus-config", "--control", cp.dash, "--scrape-interval", "1s", "--refresh", "1s").CombinedOutput()
	if err != nil {
		t.Fatalf("weft prometheus-config: %v\n%s", err, out)
	}
	if err := os.WriteFile(cfgPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t, nextIP())
	prom := exec.Command(promBin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	promLog, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	prom.Stdout, prom.Stderr = promLog, promLog
	if err := prom.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	promDone := make(chan struct{})
	go func() { prom.Wait(); close(promDone) }()
	t.Cleanup(func() {
		prom.Process.Kill()
		<-promDone
		promLog.Close()
		if t.Failed() {
			b, _ := os.ReadFile(promLog.Name())
			t.Logf("--- prometheus log ---\n%s", b)
		}
	})

	// Steady traffic: each request on its own, so that slow ones do not
	// hold back the pace.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	hc := &http.Client{Timeout: 5 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / rps)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := hc.Get("http://" + client.upstreams["server"] + "/")
				if err != nil {
					failed.Add(1)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					failed.Add(1)
				}
			}()
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	q := promQuerier{base: "http://" + promAddr}
	// Every proxy and the control plane are found and scraped.
	eventually(t, 60*time.Second, "prometheus scrapes both proxies and the control plane", func() error {
		select {
		case <-promDone:
			t.Fatalf("prometheus exited")
		default:
		}
		v, err := q.scalar(`count(up{job="weft-proxies",service=~"client|server"} == 1) + count(up{job="weft-control-plane"} == 1)`)
		if err != nil {
			return err
		}
		if v != 3 {
			return fmt.Errorf("%v targets up, want 3", v)
		}
		return nil
	})
	// 30 s of traffic fill the rate window.
	time.Sleep(35 * time.Second)
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d requests failed", f)
	}

	const selector = `weft_requests_total{direction="inbound",source_service="client",destination_service="server",response_code="200",mtls="true"}`
	rate, err := q.scalar(`sum(rate(` + selector + `[30s]))`)
	if err != nil {
		t.Fatal(err)
	}
	if rate < rps*0.85 || rate > rps*1.15 {
		t.Errorf("request rate %.2f/s, want %d/s ± 15%%", rate, rps)
	}
	hist := `weft_request_duration_seconds_bucket{direction="inbound",source_service="client",destination_service="server"}`
	p99, err := q.scalar(`histogram_quantile(0.99, sum by (le) (rate(` + hist + `[30s])))`)
	if err != nil {
		t.Fatal(err)
	}
	// One request in ten takes 150 ms: the 99th percentile falls in the
	// bucket holding 150 ms, (0.1 s, 0.25 s], with room for a loaded machine.
	if p99 <= 0.1 || p99 > 0.25 {
		t.Errorf("p99 %.3fs, want in (0.1s, 0.25s] around %v", p99, slowFor)
	}
	p50, err := q.scalar(`histogram_quantile(0.5, sum by (le) (rate(` + hist + `[30s])))`)
	if err != nil {
		t.Fatal(err)
	}
	if p50 > 0.025 {
		t.Errorf("p50 %.3fs, want well under the slow requests' 150 ms", p50)
	}
	// The outbound side sees the same pair, with the destination's version
	// from its endpoint.
	out2, err := q.scalar(`sum(rate(weft_requests_total{direction="outbound",source_service="client",destination_service="server",destination_version="v1"}[30s]))`)
	if err != nil {
		t.Fatal(err)
	}
	if out2 < rps*0.85 || out2 > rps*1.15 {
		t.Errorf("outbound rate %.2f/s, want %d/s ± 15%%", out2, rps)
	}
	t.Logf("rate %.2f/s (outbound %.2f/s), p50 %.4fs, p99 %.4fs", rate, out2, p50, p99)
}

// promQuerier asks Prometheus's HTTP API.
type promQuerier struct{ base string }

// scalar runs an instant query whose answer is one sample.
func (q promQuerier) scalar(query string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, q.base+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("query %s: %w", query, err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("query %s: %s", query, body.Error)
	}
	if len(body.Data.Result) != 1 {
		return 0, fmt.Errorf("query %s: %d samples, want 1", query, len(body.Data.Result))
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}
