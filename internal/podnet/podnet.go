// Package podnet runs workloads as "pods" on one Linux host, the way a
// Kubernetes node would: each pod is a named network namespace with a
// veth pair plugged into a bridge, so iptables rules applied inside it (the
// capture rules of `weft proxy iptables`) see its traffic exactly as in a
// real pod.
//
// Layout of a Network with prefix P and subnet S (a /24 or larger):
//
//	root namespace            hub namespace "P-hub"        pod namespace "P-<pod>"
//	P0 (veth, S.1) ────────── host0 ─┐
//	                                  br0 (S.254) ─ p<N> ─── eth0 (S.N), default via S.254
//
// The bridge lives in the hub namespace, whose netfilter tables are empty,
// so traffic between pods never crosses the host's FORWARD chain. The root
// namespace gets one interface, P0, with the subnet's first address: the
// kernel adds the subnet's connected route to it and nothing else changes
// in the host's routing. Processes in the root namespace (a control plane,
// a browser) reach every pod at its address, and pods reach them at S.1.
// Pods have no way further out: their default route ends in the hub, which
// does not forward.
//
// Everything created carries the prefix, so Stale finds what a crashed run
// left behind and RemoveStale removes it (processes included). A Network
// removes all it created in Close.
package podnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Tool is an external command the package needs.
type Tool struct {
	Name    string // the binary, looked up in PATH
	Package string // what provides it, for the error message
}

// Tools are the commands a Network and capture rules inside its pods need.
var Tools = []Tool{
	{"ip", "iproute2"},
	{"iptables", "iptables"},
	{"iptables-restore", "iptables"},
	{"iptables-save", "iptables"},
}

// Env is what Check inspects; Host() is the real one.
type Env struct {
	GOOS     string
	EUID     int
	LookPath func(string) (string, error)
}

// Host is the environment of this process.
func Host() Env { return Env{GOOS: runtime.GOOS, EUID: os.Geteuid(), LookPath: exec.LookPath} }

// ErrNotLinux, ErrNotRoot and *MissingToolsError are what Check returns.
var (
	ErrNotLinux = errors.New("network namespaces exist only on Linux")
	ErrNotRoot  = errors.New("creating network namespaces and iptables rules needs root")
)

// MissingToolsError names the commands not found in PATH and their packages.
type MissingToolsError struct{ Missing []Tool }

func (e *MissingToolsError) Error() string {
	var names []string
	for _, t := range e.Missing {
		names = append(names, t.Name)
	}
	return fmt.Sprintf("%s not found in PATH (install %s)", strings.Join(names, ", "), strings.Join(e.Packages(), " and "))
}

// Packages are the packages that provide the missing tools, without repeats.
func (e *MissingToolsError) Packages() []string {
	var pkgs []string
	for _, t := range e.Missing {
		dup := false
		for _, p := range pkgs {
			dup = dup || p == t.Package
		}
		if !dup {
			pkgs = append(pkgs, t.Package)
		}
	}
	return pkgs
}

// Check reports every precondition of a Network that env does not meet:
// Linux, root, and every Tool in PATH. Nothing is created.
func (env Env) Check() error {
	if env.GOOS != "linux" {
		return fmt.Errorf("%w (this is %s)", ErrNotLinux, env.GOOS)
	}
	var errs []error
	if env.EUID != 0 {
		errs = append(errs, ErrNotRoot)
	}
	var missing []Tool
	for _, t := range Tools {
		if _, err := env.LookPath(t.Name); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		errs = append(errs, &MissingToolsError{Missing: missing})
	}
	return errors.Join(errs...)
}

// Config describes a Network.
type Config struct {
	// Prefix names every namespace ("<Prefix>-hub", "<Prefix>-<pod>") and the
	// root namespace's interface ("<Prefix>0", at most 15 bytes in all).
	Prefix string
	// Subnet is the pods' IPv4 range, a /24 or larger, private, unused on
	// the host: .1 is the root namespace's address, the last but one of
	// the first /24 (.254) the hub's, pods get .2 upwards.
	Subnet netip.Prefix
}

// Validate checks the names and the range.
func (c Config) Validate() error {
	if c.Prefix == "" || strings.ContainsAny(c.Prefix, "/ \t\n") {
		return fmt.Errorf("podnet: prefix %q: want a plain name", c.Prefix)
	}
	if l := len(c.hostLink()); l > 15 {
		return fmt.Errorf("podnet: prefix %q: the interface %q would be %d bytes, Linux allows 15", c.Prefix, c.hostLink(), l)
	}
	if !c.Subnet.IsValid() || !c.Subnet.Addr().Is4() || c.Subnet.Bits() > 24 || c.Subnet.Bits() < 8 {
		return fmt.Errorf("podnet: subnet %s: want an IPv4 range between /8 and /24", c.Subnet)
	}
	if c.Subnet.Masked() != c.Subnet {
		return fmt.Errorf("podnet: subnet %s: host bits are set (did you mean %s?)", c.Subnet, c.Subnet.Masked())
	}
	if !c.Subnet.Addr().IsPrivate() {
		return fmt.Errorf("podnet: subnet %s is not a private range (10/8, 172.16/12, 192.168/16)", c.Subnet)
	}
	return nil
}

func (c Config) hostLink() string { return c.Prefix + "0" }
func (c Config) hubNS() string    { return c.Prefix + "-hub" }
func (c Config) nsPrefix() string { return c.Prefix + "-" }
func (c Config) addr(n int) netip.Addr {
	b := c.Subnet.Addr().As4()
	b[3] = byte(n)
	return netip.AddrFrom4(b)
}

// HostAddr is the root namespace's address on the pods' network.
func (c Config) HostAddr() netip.Addr { return c.addr(1) }

// hubAddr is the pods' gateway, in the hub namespace.
func (c Config) hubAddr() netip.Addr { return c.addr(254) }

// maxPods is how many pod addresses the first /24 holds: .2 to .253.
const maxPods = 252

// Leftovers is what a previous run with the same prefix left behind.
type Leftovers struct {
	Namespaces []string // network namespaces named <prefix>-*
	HostLink   string   // the root namespace's interface, if present
	ResolvDirs []string // /etc/netns/<prefix>-* directories
}

// Empty tells whether nothing was left behind.
func (l Leftovers) Empty() bool {
	return len(l.Namespaces) == 0 && l.HostLink == "" && len(l.ResolvDirs) == 0
}

func (l Leftovers) String() string {
	var parts []string
	if len(l.Namespaces) > 0 {
		parts = append(parts, "network namespaces "+strings.Join(l.Namespaces, ", "))
	}
	if l.HostLink != "" {
		parts = append(parts, "interface "+l.HostLink)
	}
	if len(l.ResolvDirs) > 0 {
		parts = append(parts, strings.Join(l.ResolvDirs, ", "))
	}
	return strings.Join(parts, "; ")
}

// netnsEtc is where `ip netns exec` finds per-namespace files to bind-mount
// over /etc.
const netnsEtc = "/etc/netns"

// Stale lists what a previous Network with this prefix left behind. Call it
// only while holding the prefix's Lock, or a live Network looks stale.
func Stale(ctx context.Context, c Config) (Leftovers, error) {
	var l Leftovers
	out, err := ipOut(ctx, "netns", "list")
	if err != nil {
		return l, err
	}
	for _, line := range strings.Split(out, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, c.nsPrefix()) {
			l.Namespaces = append(l.Namespaces, name)
		}
	}
	if _, err := ipOut(ctx, "link", "show", "dev", c.hostLink()); err == nil {
		l.HostLink = c.hostLink()
	}
	entries, _ := os.ReadDir(netnsEtc)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), c.nsPrefix()) {
			l.ResolvDirs = append(l.ResolvDirs, filepath.Join(netnsEtc, e.Name()))
		}
	}
	return l, nil
}

// Remove kills every process still inside the leftover namespaces, then
// deletes them, the host interface and the resolv.conf directories.
func (l Leftovers) Remove(ctx context.Context) error {
	var errs []error
	for _, ns := range l.Namespaces {
		if err := deleteNamespace(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	if l.HostLink != "" {
		// Deleting the hub took the veth's other end, and with it this one;
		// a link left without its hub is deleted here.
		if _, err := ipOut(ctx, "link", "show", "dev", l.HostLink); err == nil {
			if _, err := ipOut(ctx, "link", "del", "dev", l.HostLink); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, d := range l.ResolvDirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	_ = os.Remove(netnsEtc) // only if no other namespace has files there
	return errors.Join(errs...)
}

// deleteNamespace kills the processes inside ns and deletes it.
func deleteNamespace(ctx context.Context, ns string) error {
	if out, err := ipOut(ctx, "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if _, err := ipOut(ctx, "netns", "del", ns); err != nil {
		return err
	}
	return nil
}

// CheckSubnetFree fails when any route of the root namespace's main table
// overlaps the subnet: the pods' addresses would shadow, or be shadowed by,
// a network the host already uses. A default route does not count.
func CheckSubnetFree(ctx context.Context, c Config) error {
	out, err := ipOut(ctx, "-4", "route", "show", "table", "all")
	if err != nil {
		return err
	}
	return overlappingRoute(out, c.Subnet)
}

// overlappingRoute finds, in `ip -4 route show` output, a route other than
// a default one that overlaps subnet.
func overlappingRoute(routes string, subnet netip.Prefix) error {
	for _, line := range strings.Split(routes, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		switch dst {
		case "unicast", "local", "broadcast", "multicast", "unreachable", "blackhole", "prohibit", "throw", "nat", "anycast":
			if len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if dst == "default" {
			continue
		}
		p, err := netip.ParsePrefix(dst)
		if err != nil {
			a, aerr := netip.ParseAddr(dst)
			if aerr != nil {
				continue
			}
			p = netip.PrefixFrom(a, 32)
		}
		if p.Bits() == 0 {
			continue // 0.0.0.0/0 is a default route too
		}
		if p.Overlaps(subnet) {
			return fmt.Errorf("podnet: the host already routes %s (%s), which overlaps %s: pick another range", p, strings.TrimSpace(line), subnet)
		}
	}
	return nil
}

// Network is a hub namespace with its bridge, the root namespace's link to
// it, and the pods plugged in.
type Network struct {
	cfg Config

	mu     sync.Mutex
	pods   []*Pod
	closed bool
}

// Pod is one network namespace on the Network.
type Pod struct {
	Name    string     // as given to AddPod
	NS      string     // the network namespace: <prefix>-<name>
	IP      netip.Addr // its address on the bridge
	Gateway netip.Addr

	resolvDir string
}

// Create builds the hub namespace, its bridge and the root namespace's link
// to it. On error, whatever it created is removed again.
func Create(ctx context.Context, c Config) (_ *Network, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	n := &Network{cfg: c}
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()
	hub, link := c.hubNS(), c.hostLink()
	pfx := fmt.Sprintf("/%d", c.Subnet.Bits())
	for _, args := range [][]string{
		{"netns", "add", hub},
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "addr", "add", c.hubAddr().String() + pfx, "dev", "br0"},
		{"-n", hub, "link", "set", "br0", "up"},
		{"link", "add", link, "type", "veth", "peer", "name", "host0", "netns", hub},
		{"-n", hub, "link", "set", "host0", "master", "br0"},
		{"-n", hub, "link", "set", "host0", "up"},
		{"addr", "add", c.HostAddr().String() + pfx, "dev", link},
		{"link", "set", link, "up"},
	} {
		if _, err := ipOut(ctx, args...); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Config returns the network's configuration.
func (n *Network) Config() Config { return n.cfg }

// Hub is the hub namespace's name.
func (n *Network) Hub() string { return n.cfg.hubNS() }

// HostLink is the root namespace's interface on the network.
func (n *Network) HostLink() string { return n.cfg.hostLink() }

// AddPod creates namespace <prefix>-<name> plugged into the bridge, with
// loopback up and a default route to the hub. resolvConf, if not empty,
// becomes the pod's /etc/resolv.conf for whatever runs in it through
// Command (`ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf).
func (n *Network) AddPod(ctx context.Context, name, resolvConf string) (_ *Pod, err error) {
	if name == "" || name == "hub" || strings.ContainsAny(name, "/ \t\n") {
		return nil, fmt.Errorf("podnet: pod name %q: want a plain name other than hub", name)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errors.New("podnet: network closed")
	}
	idx := len(n.pods) + 2
	if idx-1 > maxPods {
		n.mu.Unlock()
		return nil, fmt.Errorf("podnet: at most %d pods", maxPods)
	}
	p := &Pod{Name: name, NS: n.cfg.nsPrefix() + name, IP: n.cfg.addr(idx), Gateway: n.cfg.hubAddr()}
	// Recorded before it exists, so Close removes whatever part of it was made.
	n.pods = append(n.pods, p)
	n.mu.Unlock()
	peer := fmt.Sprintf("p%d", idx) // the veth's end in the hub
	pfx := fmt.Sprintf("/%d", n.cfg.Subnet.Bits())
	for _, args := range [][]string{
		{"netns", "add", p.NS},
		{"-n", p.NS, "link", "set", "lo", "up"},
		{"-n", n.cfg.hubNS(), "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", p.NS},
		{"-n", n.cfg.hubNS(), "link", "set", peer, "master", "br0"},
		{"-n", n.cfg.hubNS(), "link", "set", peer, "up"},
		{"-n", p.NS, "addr", "add", p.IP.String() + pfx, "dev", "eth0"},
		{"-n", p.NS, "link", "set", "eth0", "up"},
		{"-n", p.NS, "route", "add", "default", "via", p.Gateway.String()},
	} {
		if _, err := ipOut(ctx, args...); err != nil {
			return nil, err
		}
	}
	if resolvConf != "" {
		p.resolvDir = filepath.Join(netnsEtc, p.NS)
		if err := os.MkdirAll(p.resolvDir, 0o755); err != nil {
			return nil, fmt.Errorf("podnet: %w", err)
		}
		if err := os.WriteFile(filepath.Join(p.resolvDir, "resolv.conf"), []byte(resolvConf), 0o644); err != nil {
			return nil, fmt.Errorf("podnet: %w", err)
		}
	}
	return p, nil
}

// Close kills whatever still runs in the pods, deletes them, the hub
// (which takes the root namespace's link with it) and the pods'
// resolv.conf files. It is safe to call more than once.
func (n *Network) Close() error {
	n.mu.Lock()
	pods := n.pods
	n.pods, n.closed = nil, true
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := Leftovers{}
	for _, p := range pods {
		if nsExists(p.NS) {
			l.Namespaces = append(l.Namespaces, p.NS)
		}
		if p.resolvDir != "" {
			l.ResolvDirs = append(l.ResolvDirs, p.resolvDir)
		}
	}
	if nsExists(n.cfg.hubNS()) {
		l.Namespaces = append(l.Namespaces, n.cfg.hubNS())
	}
	l.HostLink = n.cfg.hostLink()
	return l.Remove(ctx)
}

func nsExists(ns string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", ns))
	return err == nil
}

// Command returns a command that runs name with args inside the pod (through
// `ip netns exec`, which also applies the pod's resolv.conf). A gid other
// than 0 runs it with that group and no others, its uid unchanged: capture
// rules can exclude it by group (`weft proxy iptables --proxy-gid`) while it
// still reads the files its user can.
func (p *Pod) Command(gid uint32, name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.NS, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if gid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(os.Geteuid()), Gid: gid, Groups: []uint32{gid}}
	}
	return cmd
}

// Run runs name with args inside the pod and returns its standard output;
// an error carries its standard error.
func (p *Pod) Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", p.NS, name}, args...)...)
	return output(cmd)
}

// ipOut runs `ip args...` in the current namespace.
func ipOut(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return output(exec.CommandContext(ctx, "ip", args...))
}

func output(cmd *exec.Cmd) (string, error) {
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errOut.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return out.String(), fmt.Errorf("podnet: %s: %w: %s", strings.Join(cmd.Args, " "), err, msg)
	}
	return out.String(), nil
}
