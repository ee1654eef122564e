package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// demoCapturePrefix is what `weft demo --capture` names its namespaces
// (weft-demo-hub, weft-demo-<workload>) and the host's link (weft-demo0).
const demoCapturePrefix = "weft-demo"

// TestDemoCapture runs `weft demo --capture --duration` as a user would:
// every workload a pod with transparent capture, apps calling each other by
// mesh name. It leaves a crashed run's leftovers first (a hub namespace with
// a process inside) and checks the demo removes them, that traffic between
// the demo services goes through the captured sidecars over mTLS, that the
// dashboard sees it from the host, and that once the demo stops by itself no
// namespace, link, resolv.conf or process of it is left.
func TestDemoCapture(t *testing.T) {
	requireNetns(t)
	lock := "/run/" + demoCapturePrefix + ".lock"
	if b, err := os.ReadFile(lock); err == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 && syscall.Kill(pid, 0) == nil {
			t.Skipf("SKIP: a weft demo --capture is already running on this host (pid %d holds %s)", pid, lock)
		}
	}
	if left := demoCaptureLeftovers(); len(left) > 0 {
		t.Logf("leftovers of an earlier run before the test: %v (the demo should remove them)", left)
	}

	// A crashed run's hub namespace, with a process still inside it.
	stale := demoCapturePrefix + "-hub"
	if out, err := runIn("", "ip", "netns", "add", stale); err != nil && !strings.Contains(out, "exists") {
		t.Fatalf("ip netns add %s: %v\n%s", stale, err, out)
	}
	sleeper := exec.Command("ip", "netns", "exec", stale, "sleep", "600")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	sleeperDone := make(chan struct{})
	go func() {
		_ = sleeper.Wait()
		close(sleeperDone)
	}()
	t.Cleanup(func() {
		_ = sleeper.Process.Kill()
		<-sleeperDone
	})
	// Runs after the demo is killed (cleanups run last-registered first):
	// whatever a failed run left is removed, so the host stays clean.
	t.Cleanup(func() {
		if left := demoCaptureLeftovers(); len(left) > 0 {
			t.Logf("removing what the demo left: %v", left)
			for _, l := range left {
				if ns, ok := strings.CutPrefix(l, "netns "); ok {
					mustRunQuiet("ip", "netns", "del", ns)
				}
			}
			mustRunQuiet("ip", "link", "del", demoCapturePrefix+"0")
			matches, _ := filepath.Glob("/etc/netns/" + demoCapturePrefix + "-*")
			for _, m := range matches {
				_ = os.RemoveAll(m)
			}
		}
	})

	dir := t.TempDir()
	p := startProc(t, "demo", "demo", "--capture", "--dir", dir, "--rps", "20", "--duration", "120s")
	waitDemoTraffic(t, p, 180*time.Second, 20)
	out := p.output()
	for _, want := range []string{
		"removing what an earlier weft demo --capture left behind",
		"pod network ready", "capture rules applied", "sidecar ready", "in weft-demo-frontend-v1",
		"http://127.0.0.1:15014/dashboard/", "sending 20 req/s to http://frontend:8080/",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	select {
	case <-sleeperDone:
	case <-time.After(10 * time.Second):
		t.Errorf("the process left in the stale namespace %s still runs", stale)
	}

	// The sidecars' admin ports, at the pods' addresses, from the host.
	admin := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(\S+)\s+http://(\S+)\s+pod (\S+)$`).FindAllStringSubmatch(out, -1) {
		admin[m[1]] = "http://" + m[2]
	}
	for _, w := range []string{"catalog-v1", "catalog-v2", "ledger-v1", "cache-v1", "frontend-v1", "loadgen-v1"} {
		if !strings.HasPrefix(admin[w], "http://10.89.0.") {
			t.Fatalf("no pod admin address for %s in the output: %v\n%s", w, admin, out)
		}
	}
	// Every hop the apps make by mesh name is captured, and between
	// sidecars it is mTLS: the destinations' inbound sidecars name the
	// caller from its certificate.
	for _, c := range []struct{ workload, source, grpc string }{
		{"catalog-v1", "frontend", `grpc_status="unknown"`},
		{"catalog-v2", "frontend", `grpc_status="unknown"`},
		{"ledger-v1", "frontend", `grpc_status="0"`},
		{"frontend-v1", "loadgen", `response_code="200"`},
	} {
		eventually(t, 30*time.Second, c.workload+" served "+c.source+" over mTLS", func() error {
			metrics, err := getBody(admin[c.workload] + "/metrics")
			if err != nil {
				return err
			}
			for _, l := range strings.Split(metrics, "\n") {
				if strings.HasPrefix(l, "weft_requests_total{") && strings.Contains(l, `direction="inbound"`) &&
					strings.Contains(l, `source_service="`+c.source+`"`) && strings.Contains(l, `mtls="true"`) &&
					strings.Contains(l, c.grpc) && !strings.HasSuffix(l, " 0") {
					return nil
				}
			}
			return fmt.Errorf("no inbound request from %s with mtls=\"true\":\n%s", c.source, grepLines(metrics, "weft_requests_total{"))
		})
	}
	// The cache is opaque TCP, captured too.
	eventually(t, 30*time.Second, "cache-v1 holds mTLS connections from frontend", func() error {
		metrics, err := getBody(admin["cache-v1"] + "/metrics")
		if err != nil {
			return err
		}
		for _, l := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(l, "weft_tcp_connections_opened_total{") && strings.Contains(l, `direction="inbound"`) &&
				strings.Contains(l, `source_service="frontend"`) && strings.Contains(l, `mtls="true"`) && !strings.HasSuffix(l, " 0") {
				return nil
			}
		}
		return fmt.Errorf("no inbound TCP connection from frontend over mTLS:\n%s", grepLines(metrics, "weft_tcp"))
	})
	// The names were resolved by the frontend's sidecar, not a resolver.
	if metrics, err := getBody(admin["frontend-v1"] + "/metrics"); err != nil || !regexp.MustCompile(`weft_dns_queries_total\{result="local"\} [1-9]`).MatchString(metrics) {
		t.Errorf("the frontend's sidecar answered no DNS query (%v):\n%s", err, grepLines(metrics, "weft_dns"))
	}
	// The dashboard, from the host, shows the edges with their mTLS share.
	eventually(t, 60*time.Second, "the dashboard's graph shows frontend → catalog over mTLS", func() error {
		body, err := getBody("http://127.0.0.1:15014/dashboard/api/graph")
		if err != nil {
			return err
		}
		var g struct {
			Edges []struct {
				From, To string
				Golden   struct {
					Requests  float64 `json:"requests"`
					MTLSShare float64 `json:"mtlsShare"`
				} `json:"golden"`
			} `json:"edges"`
		}
		if err := json.Unmarshal([]byte(body), &g); err != nil {
			return fmt.Errorf("graph: %w: %.300s", err, body)
		}
		for _, e := range g.Edges {
			if e.From == "frontend.default" && e.To == "catalog.default" && e.Golden.Requests > 0 && e.Golden.MTLSShare == 1 {
				return nil
			}
		}
		return fmt.Errorf("no frontend → catalog edge with requests, all mTLS: %.600s", body)
	})

	// Ctrl-C ends it; everything it made goes with it.
	p.signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop after Ctrl-C")
	}
	if p.err != nil {
		t.Errorf("demo exited with %v\n%s", p.err, p.output())
	}
	final := p.output()
	for _, want := range []string{"stopped; logs are in", "removed the pods' network"} {
		if !strings.Contains(final, want) {
			t.Errorf("demo output lacks %q:\n%s", want, final)
		}
	}
	if m := demoOKLine.FindAllStringSubmatch(final, -1); len(m) > 0 {
		for _, r := range m {
			if failed, _ := strconv.Atoi(r[2]); failed > 0 {
				t.Logf("a traffic report counted failures: %s", r[0])
			}
		}
	}
	if left := demoCaptureLeftovers(); len(left) > 0 {
		t.Errorf("left behind after the demo stopped: %v", left)
	}
	if orphans := processesMentioning(dir); len(orphans) > 0 {
		t.Errorf("processes left behind after the demo stopped: %v", orphans)
	}
}

// demoCaptureLeftovers lists the namespaces, link and resolv.conf
// directories of `weft demo --capture` present on the host.
func demoCaptureLeftovers() []string {
	var left []string
	out, _ := runIn("", "ip", "netns", "list")
	for _, l := range strings.Split(out, "\n") {
		if name, _, _ := strings.Cut(strings.TrimSpace(l), " "); strings.HasPrefix(name, demoCapturePrefix+"-") {
			left = append(left, "netns "+name)
		}
	}
	if _, err := runIn("", "ip", "link", "show", "dev", demoCapturePrefix+"0"); err == nil {
		left = append(left, "link "+demoCapturePrefix+"0")
	}
	matches, _ := filepath.Glob("/etc/netns/" + demoCapturePrefix + "-*")
	left = append(left, matches...)
	return left
}

func getBody(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}
