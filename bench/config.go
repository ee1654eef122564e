package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// config is one configuration under test: what sits between the load
// generator and the backends.
type config interface {
	// prepare installs or builds what the configuration needs and starts
	// what its pairs share (Weft's control plane).
	prepare(ctx context.Context, e *env) error
	// startPair starts a client-side and a server-side proxy in front of one
	// backend, on the addresses given, and says where the load goes. The
	// harness then probes the entries until they answer.
	startPair(ctx context.Context, e *env, b backend, at pairAddrs) (*pair, error)
}

// pair is a running sidecar pair in front of one backend.
type pair struct {
	// entries is where the load generator sends each protocol.
	entries map[protocol]string
	// client and server are the two proxies; nil for direct.
	client, server *proc
}

// proxies lists the pair's proxy processes, client first.
func (p *pair) proxies() []*proc {
	if p.client == nil {
		return nil
	}
	return []*proc{p.client, p.server}
}

// pairAddrs are the loopback addresses of one pair's two proxies.
type pairAddrs struct{ client, server string }

// configs is every configuration, in the order a run interleaves them.
// A new one is a new file with a type that implements config, listed here.
var configs = []struct {
	name string
	new  func() config
}{
	{"direct", func() config { return &direct{} }},
	{"weft", func() config { return &weft{} }},
	{"haproxy", func() config { return &haproxy{} }},
	{"nginx", func() config { return &nginx{} }},
	{"caddy", func() config { return &caddy{} }},
}

func configNames() []string {
	var names []string
	for _, c := range configs {
		names = append(names, c.name)
	}
	return names
}

// configByName makes a fresh configuration; nil if the name is unknown.
func configByName(name string) config {
	for _, c := range configs {
		if c.name == name {
			return c.new()
		}
	}
	return nil
}

// The loopback address plan: every process on its own 127.0.x.y, away from
// the demo's 127.0.1.N and the end-to-end tests' 127.10.x.y.
const (
	echoIP    = "127.0.209.1"  // the echo server
	grpcIP    = "127.0.209.2"  // fortio's gRPC server
	controlIP = "127.0.209.10" // weft control
)

func backendIP(b backend) string {
	if b == grpcBackend {
		return grpcIP
	}
	return echoIP
}

// addrsOf is where a configuration's pair in front of backend b lives:
// 127.0.(210+config).(1|2) for the echo pair, .11/.12 for the gRPC pair.
func addrsOf(configName string, b backend) pairAddrs {
	idx := slices.Index(configNames(), configName)
	host := 1 + 10*slices.Index(backends, b)
	return pairAddrs{
		client: fmt.Sprintf("127.0.%d.%d", 210+idx, host),
		server: fmt.Sprintf("127.0.%d.%d", 210+idx, host+1),
	}
}

// freeAddrs returns n distinct free addresses on ip.
func freeAddrs(ip string, n int) ([]string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return nil, fmt.Errorf("find a free port on %s: %w", ip, err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// versioner is implemented by configurations whose software's version the
// report names.
type versioner interface {
	version(ctx context.Context) string
}

// versionLine runs a program's version command and returns the first line
// of what it prints (on either stream), or "" if it fails.
func versionLine(ctx context.Context, argv ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return ""
	}
	return firstLine(strings.TrimSpace(string(out)))
}
