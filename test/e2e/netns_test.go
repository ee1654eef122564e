package e2e

// Pods as network namespaces: each pod gets its own namespace, a veth pair
// whose far end is plugged into a bridge in a hub namespace, and a 10.x
// address. The root namespace is never touched: the hub namespace holds the
// bridge and an address on it (10.<n>.0.1), and processes that must be
// reachable from every pod (the control plane) run in the hub with runIn.
//
// Every name carries a per-process prefix so parallel test binaries never
// collide, and everything created is removed in t.Cleanup, even on failure.

import (
	"bytes"
	"context"
	"fmt"
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

	"github.com/weftmesh/weft/internal/podnet"
)

// netnsTools are the binaries the pod helpers shell out to.
var netnsTools = []string{"ip", "iptables", "iptables-restore", "iptables-save"}

// requireNetns skips the test, saying why, when the tools or the privilege to
// create network namespaces are missing.
func requireNetns(t testing.TB) {
	t.Helper()
	for _, bin := range netnsTools {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("SKIP: %s not found in PATH (install iproute2 and iptables to run the network-namespace tests)", bin)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP: network-namespace tests need root (ip netns add)")
	}
}

// netnsSeq numbers hubs within one test binary; with the pid it makes names unique.
var netnsSeq atomic.Uint32

// podNet is one bridge in a hub namespace and the pods plugged into it.
type podNet struct {
	t      testing.TB
	prefix string // unique name prefix, short: interface names are limited to 15 bytes
	hub    string // the hub namespace, holding the bridge
	subnet int    // pods get 10.<subnet>.0.<n>/24
	hubIP  string // the bridge's address in the hub namespace

	mu   sync.Mutex
	next int
}

// newPodNet creates a hub namespace with a bridge and removes it (and every
// pod created on it) when the test ends.
func newPodNet(t testing.TB) *podNet {
	t.Helper()
	requireNetns(t)
	seq := netnsSeq.Add(1)
	prefix := fmt.Sprintf("w%d%d", os.Getpid()%100000, seq)
	// 10.200-249.x.x: a private range per hub; collisions across parallel
	// binaries are harmless because each hub's addresses live only inside its
	// own namespaces.
	n := &podNet{t: t, prefix: prefix, hub: prefix + "hub", subnet: 200 + int(seq%50), next: 1}
	n.hubIP = fmt.Sprintf("10.%d.0.1", n.subnet)
	t.Cleanup(func() { mustRunQuiet("ip", "netns", "del", n.hub) })
	n.must("ip", "netns", "add", n.hub)
	n.must("ip", "-n", n.hub, "link", "set", "lo", "up")
	n.must("ip", "-n", n.hub, "link", "add", "br0", "type", "bridge")
	n.must("ip", "-n", n.hub, "addr", "add", n.hubIP+"/24", "dev", "br0")
	n.must("ip", "-n", n.hub, "link", "set", "br0", "up")
	return n
}

// createPod creates a pod namespace plugged into the bridge and returns its
// namespace name and IP address. Its default route points at the hub, so
// traffic to any address (a mesh VIP included) leaves through the veth and
// its iptables OUTPUT chain sees it.
func (n *podNet) createPod(t testing.TB, name string) (ns, ip string) {
	t.Helper()
	n.mu.Lock()
	n.next++
	idx := n.next
	n.mu.Unlock()
	ns = n.prefix + name
	ip = fmt.Sprintf("10.%d.0.%d", n.subnet, idx)
	host := fmt.Sprintf("%sv%d", n.prefix, idx) // the veth end in the hub
	if len(host) > 15 {
		t.Fatalf("interface name %q is longer than 15 bytes", host)
	}
	t.Cleanup(func() { mustRunQuiet("ip", "netns", "del", ns) })
	n.must("ip", "netns", "add", ns)
	n.must("ip", "-n", ns, "link", "set", "lo", "up")
	n.must("ip", "-n", n.hub, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
	n.must("ip", "-n", n.hub, "link", "set", host, "master", "br0")
	n.must("ip", "-n", n.hub, "link", "set", host, "up")
	n.must("ip", "-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
	n.must("ip", "-n", ns, "link", "set", "eth0", "up")
	n.must("ip", "-n", ns, "route", "add", "default", "via", n.hubIP)
	return ns, ip
}

func (n *podNet) must(args ...string) {
	n.t.Helper()
	if out, err := runIn("", args...); err != nil {
		n.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// runIn runs a command inside namespace ns ("" for the current one) and
// returns its combined output.
func runIn(ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	if ns != "" {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// nsArgs turns a command into one that runs inside namespace ns, for startProc.
func nsArgs(ns string, args ...string) []string {
	return append([]string{"netns", "exec", ns}, args...)
}

func mustRunQuiet(args ...string) { _, _ = runIn("", args...) }

// startProcIn starts `weft args...` inside namespace ns, like startProc. A gid
// other than 0 runs it with that group (its uid stays root, so it can still
// read the test's files): `weft proxy iptables --proxy-gid` excludes it from
// capture by that group.
func startProcIn(t testing.TB, ns, name string, gid uint32, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, args: args, log: filepath.Join(t.TempDir(), name+".log")}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command("ip", nsArgs(ns, append([]string{weftBin}, args...)...)...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if gid != 0 {
		p.cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: gid, Groups: []uint32{gid}}
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s in %s: %v", name, ns, err)
	}
	p.done = make(chan struct{})
	done := p.done
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(done)
	}()
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

// outputIn runs a command inside namespace ns and returns its standard
// output; a failure's error carries its standard error.
func outputIn(ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", nsArgs(ns, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// inNetns runs f on an OS thread that has entered namespace ns: the sockets
// f opens live in ns, and keep working from any goroutine afterwards
// (podnet.InNamespace, which the demo's pods use too).
func inNetns(ns string, f func() error) error { return podnet.InNamespace(ns, f) }

// dialIn returns a dial function whose connections start in namespace ns:
// a client there, subject to that namespace's iptables like any process.
func dialIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(ns, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// httpClientIn is an HTTP client inside namespace ns, one connection per request.
func httpClientIn(ns string) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: dialIn(ns), DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}
}

// listenIn opens a TCP listener inside namespace ns.
func listenIn(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// serveIn serves h inside namespace ns on addr until the test ends.
func serveIn(t testing.TB, ns, addr string, h http.Handler) {
	t.Helper()
	ln, err := listenIn(ns, addr)
	if err != nil {
		t.Fatalf("listen in %s on %s: %v", ns, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}
