package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/bench/internal/pprofget"
)

// buildWeft builds the weft binary of the module that holds this program into dir.
func buildWeft(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "weft")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/weftmesh/weft/cmd/weft")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build weft: %w", err)
	}
	return bin, nil
}

// controlPlane is a running `weft control` process with its own data dir.
type controlPlane struct {
	cmd      *exec.Cmd
	dir      string
	grpcAddr string
	dashAddr string
	api      *client.Client
	roots    *x509.CertPool
	logPath  string
	done     chan struct{}
	waitErr  error
}

// startControlPlane starts bin as `weft control` in a fresh data dir under
// dir, every port on 127.0.0.1, and waits until its API answers.
func startControlPlane(ctx context.Context, bin, dir string) (*controlPlane, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(3)
	if err != nil {
		return nil, err
	}
	cp := &controlPlane{dir: dir, grpcAddr: addrs[0], dashAddr: addrs[2], logPath: filepath.Join(dir, "control.log"), done: make(chan struct{})}
	logf, err := os.Create(cp.logPath)
	if err != nil {
		return nil, err
	}
	cp.cmd = exec.Command(bin, "control",
		"--data-dir", filepath.Join(dir, "data"),
		"--grpc-addr", addrs[0], "--api-addr", addrs[1], "--dashboard-addr", addrs[2])
	cp.cmd.Stdout, cp.cmd.Stderr = logf, logf
	cp.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cp.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start weft control: %w", err)
	}
	go func() {
		cp.waitErr = cp.cmd.Wait()
		logf.Close()
		close(cp.done)
	}()

	cfgPath := filepath.Join(dir, "data", "config")
	deadline := time.Now().Add(90 * time.Second)
	for {
		if cp.exited() {
			return nil, fmt.Errorf("weft control exited: %v; log:\n%s", cp.waitErr, cp.logTail(3000))
		}
		if time.Now().After(deadline) {
			cp.stop()
			return nil, fmt.Errorf("weft control not ready within 90s; log:\n%s", cp.logTail(3000))
		}
		if cfg, err := client.LoadConfig(cfgPath); err == nil {
			if cp.api == nil {
				if cp.api, err = client.New(cfg); err != nil {
					cp.stop()
					return nil, err
				}
				cp.roots = x509.NewCertPool()
				cp.roots.AppendCertsFromPEM([]byte(cfg.CACert))
			}
			vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := cp.api.Version(vctx)
			cancel()
			if err == nil {
				return cp, nil
			}
		}
		select {
		case <-ctx.Done():
			cp.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (cp *controlPlane) pid() int { return cp.cmd.Process.Pid }

func (cp *controlPlane) exited() bool {
	select {
	case <-cp.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits; SIGKILL after 20s.
func (cp *controlPlane) stop() {
	if cp.exited() {
		return
	}
	_ = cp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-cp.done:
	case <-time.After(20 * time.Second):
		_ = cp.cmd.Process.Kill()
		<-cp.done
	}
}

func (cp *controlPlane) logTail(n int) string {
	b, _ := os.ReadFile(cp.logPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// procStats is what /proc says about a process at one moment.
type procStats struct {
	at          time.Time
	rssKB       int64 // VmRSS
	hwmKB       int64 // VmHWM
	rssFileKB   int64 // RssFile: pages of the binary and of mapped files (etcd's bbolt)
	cpuSeconds  float64
	threads     int64
	voluntaryCS int64
}

func readProcStats(pid int) (procStats, error) {
	s := procStats{at: time.Now()}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			s.rssKB = n
		case "VmHWM":
			s.hwmKB = n
		case "RssFile":
			s.rssFileKB = n
		case "Threads":
			s.threads = n
		}
	}
	f.Close()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	fields := strings.Fields(rest)
	// fields[0] is field 3 (state); utime is field 14, stime field 15.
	if len(fields) < 13 {
		return s, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	s.cpuSeconds = (ut + st) / clockTicks
	return s, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// cpuBetween is the CPU time a process used per second of wall time.
func cpuBetween(a, b procStats) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return 0
	}
	return (b.cpuSeconds - a.cpuSeconds) / wall
}

// goMemory reads the Go runtime's memory figures, in bytes, from the
// control plane's /metrics: heap_inuse, stack_inuse and goroutines.
func (cp *controlPlane) goMemory(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cp.dashAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		for name, key := range map[string]string{
			"go_memstats_heap_inuse_bytes ": "heap_inuse", "go_memstats_stack_inuse_bytes ": "stack_inuse", "go_goroutines ": "goroutines",
			"go_memstats_heap_idle_bytes ": "heap_idle", "go_memstats_heap_released_bytes ": "heap_released",
			"go_memstats_gc_sys_bytes ": "gc_sys", "go_memstats_other_sys_bytes ": "other_sys", "go_memstats_mspan_inuse_bytes ": "mspan_inuse",
		} {
			if v, ok := strings.CutPrefix(sc.Text(), name); ok {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					out[key] = f
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no Go memory figures in /metrics")
	}
	return out, nil
}

// cpuProfile takes a CPU profile of the control plane and writes it to path.
func (cp *controlPlane) cpuProfile(ctx context.Context, d time.Duration, path string) error {
	return cp.saveDebug(ctx, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), path)
}

// heapProfile writes the control plane's heap profile to path.
func (cp *controlPlane) heapProfile(ctx context.Context, path string) error {
	return cp.saveDebug(ctx, "heap?gc=1", path)
}

// liveHeap forces a garbage collection in the control plane and returns
// the bytes of heap objects right after it: the live heap. The heap
// profile does both in one request (gc=1, and with debug=1 it ends with
// the runtime.MemStats it reads when written), so what the control plane
// allocates between the collection and the reading is only the profile.
func (cp *controlPlane) liveHeap(ctx context.Context) (float64, error) {
	url := fmt.Sprintf("http://%s/debug/pprof/heap?gc=1&debug=1", cp.dashAddr)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", url, err)
	}
	return 0, fmt.Errorf("%s: no HeapAlloc line", url)
}

// goroutineProfile writes the control plane's goroutine profile to path:
// what the stacks at rest are spent on, per creating function.
func (cp *controlPlane) goroutineProfile(ctx context.Context, path string) error {
	return cp.saveDebug(ctx, "goroutine", path)
}

// saveDebug writes what /debug/pprof/<what> answers to path.
func (cp *controlPlane) saveDebug(ctx context.Context, what, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/%s", cp.dashAddr, what)
	if err := pprofget.Save(ctx, url, path); err != nil {
		return fmt.Errorf("%w (does this weft serve /debug/pprof/?)", err)
	}
	return nil
}

// freeAddrs returns n loopback addresses whose ports were free a moment ago.
func freeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}
