// Package e2e runs real `weft control` and `weft proxy` processes on loopback
// addresses and drives them the way an operator would.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
	// Everything the weft binary links (cmd/weft is cli.Run), linked into
	// the test binary too, unused: go test then caches this package's
	// results only as long as none of the sources of the binary TestMain
	// builds and runs has changed.
	_ "github.com/weftmesh/weft/cli"
)

var weftBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weft-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	weftBin = filepath.Join(dir, "weft")
	build := exec.Command("go", "build", "-o", weftBin, "github.com/weftmesh/weft/cmd/weft")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build weft:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// nextIP hands every workload of every test its own loopback address.
var ipCounter atomic.Uint32

func nextIP() string {
	n := ipCounter.Add(1)
	return fmt.Sprintf("127.10.%d.%d", n/250, n%250+1)
}

// handedOut remembers every address freeAddr gave, so that two calls never
// give the same one (the kernel may reuse a port just released).
var (
	handedOutMu sync.Mutex
	handedOut   = map[string]bool{}
)

// freeAddr returns ip:port with a port that was free a moment ago and has
// not been handed out before.
func freeAddr(t testing.TB, ip string) string {
	t.Helper()
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatalf("find a free port on %s: %v", ip, err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut[addr] {
			handedOut[addr] = true
			return addr
		}
	}
	t.Fatalf("no new free port on %s after 100 tries", ip)
	return ""
}

// proc is a child process whose output is kept in a file and shown when the test fails.
type proc struct {
	t    testing.TB
	name string
	args []string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, args: args, log: filepath.Join(t.TempDir(), name+".log")}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", p.name, b)
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(weftBin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	done := p.done
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(done)
	}()
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// stop sends SIGTERM and waits for the exit.
func (p *proc) stop() error {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(40 * time.Second):
		p.kill()
		return fmt.Errorf("%s did not exit within 40s of SIGTERM", p.name)
	}
}

func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// controlPlane is a running `weft control`.
type controlPlane struct {
	*proc
	dataDir, grpc, api, dash string
	etcd                     []string
	client                   *client.Client
}

type controlOpts struct {
	dataDir string
	etcd    []string
	ip      string
}

func startControl(t testing.TB, o controlOpts) *controlPlane {
	t.Helper()
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	if o.ip == "" {
		o.ip = nextIP()
	}
	cp := &controlPlane{dataDir: o.dataDir, etcd: o.etcd,
		grpc: freeAddr(t, o.ip), api: freeAddr(t, o.ip), dash: freeAddr(t, o.ip)}
	cp.proc = startProc(t, "control-"+o.ip, cp.args()...)
	cp.waitUp(t)
	return cp
}

func (cp *controlPlane) args() []string {
	a := []string{"control", "--data-dir", cp.dataDir, "--grpc-addr", cp.grpc, "--api-addr", cp.api, "--dashboard-addr", cp.dash}
	if len(cp.etcd) > 0 {
		a = append(a, "--etcd-endpoints", strings.Join(cp.etcd, ","))
	}
	return a
}

func (cp *controlPlane) waitUp(t testing.TB) {
	t.Helper()
	eventually(t, 60*time.Second, "control plane answers", func() error {
		if cp.exited() {
			t.Fatalf("control plane exited: %v\n%s", cp.err, cp.output())
		}
		cfg, err := client.LoadConfig(filepath.Join(cp.dataDir, "config"))
		if err != nil {
			return err
		}
		// The config file holds the address this replica listened on first; use ours.
		cfg.Server = "https://" + cp.api
		c, err := client.New(cfg)
		if err != nil {
			return err
		}
		if _, err := c.Version(context.Background()); err != nil {
			return err
		}
		cp.client = c
		return nil
	})
}

// restart starts the control plane again on the same data dir and ports.
func (cp *controlPlane) restart(t testing.TB) {
	t.Helper()
	if !cp.exited() {
		t.Fatal("restart: control plane still running")
	}
	cp.proc.start()
	cp.waitUp(t)
}

func (cp *controlPlane) caFile() string { return filepath.Join(cp.dataDir, "ca.crt") }

func (cp *controlPlane) token(t testing.TB, service string) string {
	t.Helper()
	tok, err := cp.client.CreateToken(context.Background(), service, "default", time.Hour)
	if err != nil {
		t.Fatalf("create token for %s: %v", service, err)
	}
	return tok.Token
}

func (cp *controlPlane) apply(t testing.TB, doc string) {
	t.Helper()
	if _, err := cp.client.Apply(context.Background(), []byte(doc), "test.yaml"); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// sidecar is a running `weft proxy`.
type sidecar struct {
	*proc
	service, ip, inbound, admin string
	upstreams                   map[string]string // service → local address
	httpProxy                   string
}

type sidecarOpts struct {
	service, version, app string
	upstreams             []string // services
	httpProxy             bool
	extra                 []string
	token                 string
	ip                    string
}

func startSidecar(t testing.TB, cp *controlPlane, o sidecarOpts) *sidecar {
	t.Helper()
	if o.ip == "" {
		o.ip = nextIP()
	}
	s := &sidecar{service: o.service, ip: o.ip, inbound: freeAddr(t, o.ip), admin: freeAddr(t, o.ip), upstreams: map[string]string{}}
	if o.token == "" {
		o.token = cp.token(t, o.service)
	}
	if o.app == "" {
		o.app = freeAddr(t, o.ip)
	}
	args := []string{"proxy", "--service", o.service, "--control", cp.grpc, "--token", o.token,
		"--ca-file", cp.caFile(), "--app", o.app, "--inbound", s.inbound, "--admin", s.admin, "--drain-delay", "300ms"}
	if o.version != "" {
		args = append(args, "--version", o.version)
	}
	for _, u := range o.upstreams {
		addr := freeAddr(t, o.ip)
		s.upstreams[u] = addr
		args = append(args, "--upstream", u+"="+addr)
	}
	if o.httpProxy {
		s.httpProxy = freeAddr(t, o.ip)
		args = append(args, "--http-proxy", s.httpProxy)
	}
	args = append(args, o.extra...)
	s.proc = startProc(t, o.service+"-"+o.ip, args...)
	return s
}

func (s *sidecar) waitReady(t testing.TB) *sidecar {
	t.Helper()
	eventually(t, 30*time.Second, s.service+" sidecar ready", func() error {
		if s.exited() {
			t.Fatalf("%s sidecar exited: %v\n%s", s.service, s.err, s.output())
		}
		return httpGetOK("http://" + s.admin + "/ready")
	})
	return s
}

func (s *sidecar) adminGet(t testing.TB, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + path)
	if err != nil {
		t.Fatalf("admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// eventually retries f until it succeeds or the limit passes.
func eventually(t testing.TB, limit time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, limit, err)
}

func httpGetOK(url string) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// backend is an in-process app that says who it is.
type backend struct {
	addr string
	srv  *http.Server
	hits atomic.Int64
}

func startBackend(t testing.TB, ip, name string, h http.Handler) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String()}
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("x-backend", name)
			fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.Path)
		})
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		h.ServeHTTP(w, r)
	})}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	b.srv.Protocols = &p
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// load sends requests at a steady pace until stopped, counting failures.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	done       chan struct{}
}

func startLoad(url string, every time.Duration) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	c := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			resp, err := c.Get(url)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d (%s)", resp.StatusCode, resp.Header.Get("x-weft-error"))
				}
			}
			if err != nil {
				l.failed.Add(1)
				l.mu.Lock()
				if len(l.errs) < 10 {
					l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
				}
				l.mu.Unlock()
				continue
			}
			l.ok.Add(1)
		}
	}()
	return l
}

func (l *load) finish() (ok, failed int64, errs []string) {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failed.Load(), l.errs
}
