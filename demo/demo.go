// Package demo runs `weft demo`: a whole local mesh in one command. The
// control plane, every demo app and every sidecar are separate processes of
// this same binary, each workload on its own loopback address (127.0.1.N).
//
// With Options.Capture (capture.go) each workload is a pod instead: its own
// network namespace (internal/podnet) with the capture rules of `weft proxy
// iptables`, a transparent sidecar, and an app that calls its peers by mesh
// name.
package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/internal/podnet"
)

// Options configure the demo.
type Options struct {
	// Bin is the weft binary to run the children with (os.Executable()).
	Bin string
	// Dir holds the control plane's data and every log. Empty: a new temp dir.
	Dir string
	// RPS is the traffic generator's request rate.
	RPS int
	// Duration stops the demo by itself after that long (0: until Ctrl-C).
	Duration time.Duration
	// Capture runs every workload in a network namespace of its own with
	// transparent capture (root only; see capture.go).
	Capture bool
	// CaptureSubnet is the pods' address range with Capture (DefaultCaptureSubnet).
	CaptureSubnet netip.Prefix
	Out           io.Writer
}

// workload is one demo app and its sidecar.
type workload struct {
	service, version, ip string
	app                  string   // demo app to run
	appArgs              []string // besides --listen
	upstreams            []string // services reached through local ports 9001, 9002, ... (explicit mode)
	pod                  *podnet.Pod
}

const (
	controlGRPC = "127.0.0.1:15010"
	controlAPI  = "127.0.0.1:15011"
	controlDash = "127.0.0.1:15014"
	appPort     = "8080"
	inboundPort = "15006"
	adminPort   = "15000"
)

func (w workload) name() string {
	if w.version != "" {
		return w.service + "-" + w.version
	}
	return w.service
}

// appAddr is where the app listens: its own loopback address, or in a pod
// the pod's loopback, reached only through the sidecar.
func (w workload) appAddr() string {
	if w.pod != nil {
		return net.JoinHostPort("127.0.0.1", appPort)
	}
	return net.JoinHostPort(w.ip, appPort)
}

// inboundAddr is the endpoint other sidecars dial: the sidecar's inbound
// port, or in a pod the app's port at the pod's address, which the pod's
// capture rules hand to the sidecar's inbound port (15006).
func (w workload) inboundAddr() string {
	if w.pod != nil {
		return net.JoinHostPort(w.ip, appPort)
	}
	return net.JoinHostPort(w.ip, inboundPort)
}

// adminAddr is the sidecar's admin port, reachable from the host (and the
// control plane, which scrapes it) in both modes.
func (w workload) adminAddr() string { return net.JoinHostPort(w.ip, adminPort) }
func (w workload) upstreamAddr(i int) string {
	return net.JoinHostPort(w.ip, fmt.Sprint(9001+i))
}

// topology: loadgen → frontend → catalog (v1, v2), ledger (gRPC), cache (TCP).
// In explicit mode each client reaches its peers through its sidecar's local
// ports (9001, 9002, ...); with capture it calls them by mesh name, as an app
// that knows nothing of the mesh would, and the pod's rules do the rest.
func topology(rps int, capture bool) []workload {
	frontendArgs := []string{"--catalog", "http://127.0.1.6:9001", "--ledger", "127.0.1.6:9002", "--cache", "127.0.1.6:9003"}
	loadgenArgs := []string{"--target", "http://127.0.1.7:9001/", "--rps", fmt.Sprint(rps)}
	frontendUp, loadgenUp := []string{"catalog", "ledger", "cache"}, []string{"frontend"}
	if capture {
		frontendArgs = []string{"--catalog", "http://catalog:8080", "--ledger", "ledger:8080", "--cache", "cache:8080"}
		loadgenArgs = []string{"--target", "http://frontend:8080/", "--rps", fmt.Sprint(rps)}
		frontendUp, loadgenUp = nil, nil
	}
	return []workload{
		{service: "catalog", version: "v1", ip: "127.0.1.2", app: "catalog", appArgs: []string{"--version", "v1"}},
		{service: "catalog", version: "v2", ip: "127.0.1.3", app: "catalog", appArgs: []string{"--version", "v2"}},
		{service: "ledger", version: "v1", ip: "127.0.1.4", app: "ledger"},
		{service: "cache", version: "v1", ip: "127.0.1.5", app: "cache"},
		{service: "frontend", version: "v1", ip: "127.0.1.6", app: "frontend", upstreams: frontendUp, appArgs: frontendArgs},
		{service: "loadgen", version: "v1", ip: "127.0.1.7", app: "loadgen", upstreams: loadgenUp, appArgs: loadgenArgs},
	}
}

// resources declares the demo's services and mesh settings.
const resources = `apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata:
  name: default
spec:
  mtls:
    mode: STRICT
  certificateTTL: 1h
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: frontend
spec:
  ports:
  - {name: http, port: 8080, protocol: http}
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: catalog
spec:
  ports:
  - {name: http, port: 8080, protocol: http}
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: ledger
spec:
  ports:
  - {name: grpc, port: 8080, protocol: grpc}
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: cache
spec:
  ports:
  - {name: tcp, port: 8080, protocol: tcp}
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: loadgen
spec:
  ports:
  - {name: http, port: 8080, protocol: http}
`

// Run starts the mesh, prints where to look, streams the traffic
// generator's reports, and stops every process it started when ctx ends.
// With o.Capture it first checks what capture needs (before creating
// anything), then removes what a crashed earlier run left behind.
func Run(ctx context.Context, o Options) (err error) {
	if o.Capture {
		if err := CaptureRequirements(podnet.Host()); err != nil {
			return err
		}
		if !o.CaptureSubnet.IsValid() {
			o.CaptureSubnet = DefaultCaptureSubnet
		}
		if err := captureConfig(o.CaptureSubnet).Validate(); err != nil {
			return fmt.Errorf("demo: --capture-subnet: %w", err)
		}
	}
	if o.RPS <= 0 {
		o.RPS = 20
	}
	// Before anything is created: a plain demo or a control plane already
	// running would make ours fail half-way.
	if err := checkPortsFree(controlAPI, controlDash); err != nil {
		return err
	}
	if !o.Capture {
		if err := checkPortsFree(controlGRPC); err != nil {
			return err
		}
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "weft-demo-"); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	logDir := filepath.Join(o.Dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	work := topology(o.RPS, o.Capture)
	steps := 3 + 2*len(work)
	if o.Capture {
		steps = 4 + 3*len(work)
	}
	step := 0
	progress := func(format string, args ...any) {
		step++
		fmt.Fprintf(o.Out, "[%2d/%d] %s\n", step, steps, fmt.Sprintf(format, args...))
	}
	say := func(s string) { fmt.Fprintln(o.Out, s) }

	// The pods' network, torn down after every process in it has stopped
	// (deferred first, so it runs after stopAll).
	grpcAddr := controlGRPC
	var pods *podNetwork
	if o.Capture {
		if pods, err = openPodNetwork(ctx, o.CaptureSubnet, say); err != nil {
			return err
		}
		defer pods.close(say)
		progress("pod network ready: hub namespace %s, %s on %s, this host at %s",
			pods.net.Hub(), o.CaptureSubnet, pods.net.HostLink(), pods.cfg.HostAddr())
		grpcAddr = net.JoinHostPort(pods.cfg.HostAddr().String(), "15010")
	}

	sup := &supervisor{bin: o.Bin, logDir: logDir}
	defer func() {
		say("stopping every process the demo started…")
		sup.stopAll(15*time.Second, say)
		say("stopped; logs are in " + logDir)
	}()

	startCtx, cancelStart := context.WithTimeout(ctx, 90*time.Second)
	defer cancelStart()
	dataDir := filepath.Join(o.Dir, "control")
	cp, err := sup.start("control", nil, "control", "--data-dir", dataDir,
		"--grpc-addr", grpcAddr, "--api-addr", controlAPI, "--dashboard-addr", controlDash)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dataDir, "config")
	var api *client.Client
	if err := waitFor(startCtx, cp, "the control plane", func() error {
		cfg, err := client.LoadConfig(cfgPath)
		if err != nil {
			return err
		}
		if api, err = client.New(cfg); err != nil {
			return err
		}
		_, err = api.Version(startCtx)
		return err
	}); err != nil {
		return err
	}
	progress("control plane up (gRPC %s, API https://%s)", grpcAddr, controlAPI)

	if _, err := api.Apply(startCtx, []byte(resources), "demo"); err != nil {
		return fmt.Errorf("demo: apply the demo's resources: %w", err)
	}
	progress("applied Mesh and Services (frontend, catalog, ledger, cache, loadgen)")

	caFile := filepath.Join(dataDir, "ca.crt")
	for i := range work {
		w := &work[i]
		if pods != nil {
			if err := pods.addPod(startCtx, w, o.Bin, progress); err != nil {
				return err
			}
		}
		if err := startWorkload(startCtx, sup, api, *w, o, grpcAddr, caFile, progress); err != nil {
			return err
		}
	}
	progress("mesh ready")
	printWhereToLook(o.Out, work, dataDir, logDir)

	var stop <-chan time.Time
	if o.Duration > 0 {
		stop = time.After(o.Duration)
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		case <-tick.C:
			if p := sup.exited(); p != nil {
				return fmt.Errorf("demo: %s exited unexpectedly (%v); see %s", p.name, p.err, p.log)
			}
		}
	}
}

func startWorkload(ctx context.Context, sup *supervisor, api *client.Client, w workload, o Options, grpcAddr, caFile string, progress func(string, ...any)) error {
	var tee io.Writer
	if w.app == "loadgen" {
		tee = prefixWriter(o.Out, "  traffic │ ")
	}
	appArgs := append([]string{"demo", "app", w.app, "--listen", w.appAddr()}, w.appArgs...)
	if w.app == "loadgen" {
		appArgs = append([]string{"demo", "app", w.app}, w.appArgs...)
	}
	tok, err := api.CreateToken(ctx, w.service, "default", time.Hour)
	if err != nil {
		return fmt.Errorf("demo: join token for %s: %w", w.service, err)
	}
	proxyArgs := []string{"proxy", "--service", w.service, "--version", w.version,
		"--control", grpcAddr, "--token", tok.Token, "--ca-file", caFile,
		"--app", w.appAddr(), "--inbound", w.inboundAddr(), "--admin", w.adminAddr()}
	for i, u := range w.upstreams {
		proxyArgs = append(proxyArgs, "--upstream", u+"="+w.upstreamAddr(i))
	}
	var sidecar, app *process
	if w.pod != nil {
		proxyArgs = append(proxyArgs, "--mode", "transparent")
		sidecar, err = sup.startIn(w.pod, proxyGID, w.name()+"-proxy", nil, proxyArgs...)
	} else {
		sidecar, err = sup.start(w.name()+"-proxy", nil, proxyArgs...)
	}
	if err != nil {
		return err
	}
	if err := waitFor(ctx, sidecar, w.name()+"'s sidecar", func() error { return httpOK("http://" + w.adminAddr() + "/ready") }); err != nil {
		return err
	}
	progress("%-12s sidecar ready (admin http://%s)", w.name(), w.adminAddr())
	if w.pod != nil {
		app, err = sup.startIn(w.pod, 0, w.name(), tee, appArgs...)
	} else {
		app, err = sup.start(w.name(), tee, appArgs...)
	}
	if err != nil {
		return err
	}
	if w.app != "loadgen" {
		dial := dialOK
		if w.pod != nil {
			dial = func(addr string) error { return dialOKIn(w.pod, addr) }
		}
		if err := waitFor(ctx, app, w.name(), func() error { return dial(w.appAddr()) }); err != nil {
			return err
		}
	}
	if w.pod != nil {
		progress("%-12s app running on %s in %s", w.name(), w.appAddr(), w.pod.NS)
	} else {
		progress("%-12s app running on %s", w.name(), w.appAddr())
	}
	return nil
}

func printWhereToLook(out io.Writer, work []workload, dataDir, logDir string) {
	fmt.Fprintf(out, "\nWeft demo is running. Where to look:\n")
	fmt.Fprintf(out, "  dashboard               http://%s/dashboard/\n", controlDash)
	fmt.Fprintf(out, "  control plane metrics   http://%s/metrics   proxies: http://%s/debug/proxies\n", controlDash, controlDash)
	fmt.Fprintf(out, "  Prometheus              go run ./cmd/weft prometheus-config --control %s > prometheus.yml\n", controlDash)
	fmt.Fprintf(out, "  CLI                     export WEFT_CONFIG=%s\n", filepath.Join(dataDir, "config"))
	fmt.Fprintf(out, "                          go run ./cmd/weft get workloads -A\n")
	fmt.Fprintf(out, "  sidecar admin endpoints (/ready /clusters /config_dump /metrics /certs):\n")
	for _, w := range work {
		if w.pod != nil {
			fmt.Fprintf(out, "    %-12s http://%-22s pod %s\n", w.name(), w.adminAddr(), w.pod.NS)
		} else {
			fmt.Fprintf(out, "    %-12s http://%s\n", w.name(), w.adminAddr())
		}
	}
	for _, w := range work {
		if w.pod != nil && w.app == "frontend" {
			fmt.Fprintf(out, "  inside a pod            sudo ip netns exec %s curl -s http://catalog:8080/items\n", w.pod.NS)
			fmt.Fprintf(out, "                          sudo ip netns exec %s iptables-save -t nat\n", w.pod.NS)
		}
	}
	fmt.Fprintf(out, "  logs                    %s\n", logDir)
	fmt.Fprintf(out, "Press Ctrl-C to stop.\n\n")
}

func checkPortsFree(addrs ...string) error {
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("demo: %s is in use (is another weft control or demo running?): %w", a, err)
		}
		ln.Close()
	}
	return nil
}

func httpOK(url string) error {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

func dialOK(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// linePrefixer writes each complete line to out with a prefix. It needs no
// goroutine: partial lines wait in buf for their newline.
type linePrefixer struct {
	out    io.Writer
	prefix string
	buf    []byte
}

func prefixWriter(out io.Writer, prefix string) io.Writer {
	return &linePrefixer{out: out, prefix: prefix}
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if _, err := fmt.Fprintf(l.out, "%s%s\n", l.prefix, l.buf[:i]); err != nil {
			return len(p), err
		}
		l.buf = l.buf[i+1:]
	}
}
