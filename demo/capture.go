package demo

// `weft demo --capture`: every workload is a pod, a network namespace of its
// own on a bridge (internal/podnet), holding its app and its sidecar. Inside
// each pod `weft proxy iptables` installs the capture rules, the sidecar runs
// with --mode transparent under group proxyGID (which the rules exclude, so
// its own connections are not captured), and the app is the same demo app as
// in explicit mode, called with mesh names (http://catalog:8080) that the
// sidecar's DNS proxy resolves to the services' VIPs. The control plane stays
// in the root namespace, its gRPC port on the host's address on the pods'
// bridge, its API and dashboard on 127.0.0.1 as in explicit mode.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/podnet"
)

// DefaultCaptureSubnet is the pods' range unless --capture-subnet says otherwise.
var DefaultCaptureSubnet = netip.MustParsePrefix("10.89.0.0/24")

// capturePrefix names every namespace (weft-demo-hub, weft-demo-frontend, ...)
// and the host's interface (weft-demo0).
const capturePrefix = "weft-demo"

// proxyGID is the group the sidecars run with; the capture rules leave its
// connections alone. Istio's 1337.
const proxyGID = 1337

func captureConfig(subnet netip.Prefix) podnet.Config {
	return podnet.Config{Prefix: capturePrefix, Subnet: subnet}
}

// installHints says how to get each package podnet may miss.
var installHints = map[string]string{
	"iproute2": "Debian/Ubuntu: apt-get install iproute2; Fedora/RHEL: dnf install iproute",
	"iptables": "Debian/Ubuntu: apt-get install iptables; Fedora/RHEL: dnf install iptables",
}

// CaptureRequirements checks, without creating anything, what --capture
// needs: Linux, root, iproute2's ip, and iptables with iptables-restore
// and iptables-save. Every unmet one is named with how to fix it.
func CaptureRequirements(env podnet.Env) error {
	err := env.Check()
	if err == nil {
		return nil
	}
	if errors.Is(err, podnet.ErrNotLinux) {
		return fmt.Errorf("--capture needs Linux: it runs each workload in a network namespace, and this is %s; drop --capture", env.GOOS)
	}
	var msgs []string
	if errors.Is(err, podnet.ErrNotRoot) {
		msgs = append(msgs, "--capture needs root: it creates network namespaces and iptables rules; run with sudo, or drop --capture")
	}
	var missing *podnet.MissingToolsError
	if errors.As(err, &missing) {
		for _, pkg := range missing.Packages() {
			var names []string
			for _, t := range missing.Missing {
				if t.Package == pkg {
					names = append(names, t.Name)
				}
			}
			what := "the " + strings.Join(names, ", ") + " command"
			if len(names) > 1 {
				what += "s"
			}
			msgs = append(msgs, fmt.Sprintf("--capture needs %s from %s, not found in PATH: install %s (%s), or drop --capture",
				what, pkg, pkg, installHints[pkg]))
		}
	}
	if len(msgs) == 0 {
		return fmt.Errorf("--capture: %w", err)
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// podNetwork is the demo's pods, the lock that makes them its own, and
// how to tear them down.
type podNetwork struct {
	cfg  podnet.Config
	lock *podnet.Lock
	net  *podnet.Network
}

// openPodNetwork takes the demo's lock, removes what an earlier run left
// behind (saying so), checks that the range is free on this host, and
// creates the hub and the host's link to it.
func openPodNetwork(ctx context.Context, subnet netip.Prefix, say func(string)) (_ *podNetwork, err error) {
	cfg := captureConfig(subnet)
	lock, err := podnet.AcquireLock(capturePrefix)
	if err != nil {
		return nil, fmt.Errorf("demo: another weft demo --capture is running: %w", err)
	}
	defer func() {
		if err != nil {
			lock.Release()
		}
	}()
	stale, err := podnet.Stale(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("demo: look for leftovers of an earlier run: %w", err)
	}
	if !stale.Empty() {
		say("removing what an earlier weft demo --capture left behind (it did not stop cleanly): " + stale.String())
		if err := stale.Remove(ctx); err != nil {
			return nil, fmt.Errorf("demo: remove the leftovers of an earlier run: %w", err)
		}
	}
	if err := podnet.CheckSubnetFree(ctx, cfg); err != nil {
		return nil, fmt.Errorf("demo: --capture-subnet: %w", err)
	}
	n, err := podnet.Create(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("demo: create the pods' network: %w", err)
	}
	return &podNetwork{cfg: cfg, lock: lock, net: n}, nil
}

// resolvConf is every pod's /etc/resolv.conf. It lists no nameserver, so
// stub resolvers ask 127.0.0.1:53, which the pod's capture rules hand to
// the sidecar's DNS proxy; the search path lets `catalog` resolve as
// `catalog.default.svc.weft`. The pods have no route out of their bridge,
// so names outside the mesh do not resolve (the sidecar logs that it has
// no upstream resolver).
const resolvConf = `# Written by weft demo --capture for this pod; removed when the demo stops.
# No nameserver: queries go to 127.0.0.1:53, which the capture rules send to
# the sidecar's DNS proxy. It answers mesh names with their VIPs; the pods
# have no way out, so other names do not resolve.
search default.svc.weft svc.weft weft
`

// addPod creates w's pod and installs its capture rules, with the very
// `weft proxy iptables` an operator would run.
func (p *podNetwork) addPod(ctx context.Context, w *workload, bin string, progress func(string, ...any)) error {
	pod, err := p.net.AddPod(ctx, w.name(), resolvConf)
	if err != nil {
		return fmt.Errorf("demo: pod for %s: %w", w.name(), err)
	}
	w.pod, w.ip = pod, pod.IP.String()
	if out, err := pod.Run(ctx, bin, "proxy", "iptables", "--capture-dns",
		"--proxy-gid", fmt.Sprint(proxyGID), "--exclude-inbound-ports", adminPort); err != nil {
		return fmt.Errorf("demo: capture rules in %s: %w%s", pod.NS, err, strings.TrimSpace("\n"+out))
	}
	progress("%-12s pod %s at %s, capture rules applied (weft proxy iptables --capture-dns --proxy-gid %d)", w.name(), pod.NS, pod.IP, proxyGID)
	return nil
}

// close removes every namespace, the host's link and the pods'
// resolv.conf files, then releases the lock. Call it after every process
// in the pods has stopped.
func (p *podNetwork) close(say func(string)) {
	say(fmt.Sprintf("removing the pods' network namespaces and %s…", p.net.HostLink()))
	if err := p.net.Close(); err != nil {
		say("could not remove everything (the next weft demo --capture will retry): " + err.Error())
	} else {
		say("removed the pods' network")
	}
	p.lock.Release()
}

// dialOKIn dials addr from inside pod.
func dialOKIn(pod *podnet.Pod, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := pod.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
