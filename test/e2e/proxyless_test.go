package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proxyless gRPC: stock grpc-go clients and servers (examples/proxyless-grpc)
// with a bootstrap from `weft bootstrap grpc` and SVID files from
// `weft agent`, beside sidecar'd workloads of the same mesh.

const proxylessMesh = `
apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  certificateTTL: 1m
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: greeter}
spec:
  ports: [{name: grpc, port: 9000, protocol: grpc}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: echo}
spec:
  ports: [{name: grpc, port: 9000, protocol: grpc}]
`

// echoSplit routes echo: x-canary: yes to v2, the rest 80/20 to v1/v2.
const echoSplit = `
apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: echo}
spec:
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: echo}
spec:
  service: echo
  rules:
  - name: canary
    match: [{headers: [{name: x-canary, exact: "yes"}]}]
    backends: [{subset: v2}]
  - name: split
    backends: [{subset: v1, weight: 80}, {subset: v2, weight: 20}]
`

// proxylessExamples are the example binaries, built once per test binary.
var proxylessExamples struct {
	once           sync.Once
	server, client string
	err            error
}

func buildProxylessExamples(t *testing.T) (server, client string) {
	t.Helper()
	proxylessExamples.once.Do(func() {
		dir, err := os.MkdirTemp("", "weft-e2e-proxyless-")
		if err != nil {
			proxylessExamples.err = err
			return
		}
		for _, b := range []struct {
			out *string
			pkg string
		}{{&proxylessExamples.server, "server"}, {&proxylessExamples.client, "client"}} {
			*b.out = filepath.Join(dir, b.pkg)
			out, err := exec.Command("go", "build", "-o", *b.out,
				"github.com/weftmesh/weft/examples/proxyless-grpc/"+b.pkg).CombinedOutput()
			if err != nil {
				proxylessExamples.err = fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if proxylessExamples.err != nil {
		t.Fatal(proxylessExamples.err)
	}
	return proxylessExamples.server, proxylessExamples.client
}

// proxylessApp is the identity and bootstrap of one proxyless workload:
// its `weft agent` and the bootstrap file its gRPC code reads.
type proxylessApp struct {
	service   string
	certs     string
	bootstrap string
	agent     *proc
}

// startProxylessApp starts the agent of a proxyless workload of service
// (registering serve, when set, with version) and writes its bootstrap.
func startProxylessApp(t *testing.T, cp *controlPlane, service, version, serve string) *proxylessApp {
	t.Helper()
	dir := t.TempDir()
	a := &proxylessApp{service: service, certs: filepath.Join(dir, "certs"), bootstrap: filepath.Join(dir, "bootstrap.json")}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(cp.token(t, service)), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"agent", "--service", service, "--control", cp.grpc, "--token-file", tokenFile,
		"--ca-file", cp.caFile(), "--out", a.certs}
	boot := []string{"bootstrap", "grpc", "--service", service, "--control", cp.grpc, "--certs", a.certs,
		"--out", a.bootstrap, "--refresh", "1s"}
	if serve != "" {
		args = append(args, "--serve", serve, "--version", version)
		boot = append(boot, "--serve", serve, "--version", version)
	}
	a.agent = startProc(t, "agent-"+service+"-"+version, args...)
	if out, err := exec.Command(weftBin, boot...).CombinedOutput(); err != nil {
		t.Fatalf("weft bootstrap grpc: %v\n%s", err, out)
	}
	eventually(t, 30*time.Second, service+" agent wrote its SVID", func() error {
		if a.agent.exited() {
			t.Fatalf("agent of %s exited: %v\n%s", service, a.agent.err, a.agent.output())
		}
		_, err := a.serial()
		return err
	})
	return a
}

// serial is the serial number of the SVID in the agent's cert.pem.
func (a *proxylessApp) serial() (string, error) {
	b, err := os.ReadFile(filepath.Join(a.certs, "cert.pem"))
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "", fmt.Errorf("cert.pem holds no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", err
	}
	if len(c.URIs) == 0 || !strings.HasSuffix(c.URIs[0].String(), "/sa/"+a.service) {
		return "", fmt.Errorf("cert.pem is for %v, not %s", c.URIs, a.service)
	}
	return c.SerialNumber.Text(16), nil
}

// exampleProc is a running example binary; its output is shown when the test fails.
type exampleProc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startExample(t *testing.T, name, bin, bootstrap string, args ...string) *exampleProc {
	t.Helper()
	p := &exampleProc{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), "GRPC_XDS_BOOTSTRAP="+bootstrap)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
	return p
}

// callResult is one line of the example client: the server that answered
// ("<name>") or the error ("error <code>"), and how long the call took.
type callResult struct {
	key  string
	took time.Duration
	msg  string // an error's message
}

// runCalls runs the example client against target, with args after the
// target's, and returns its result lines.
func runCalls(t *testing.T, clientBin, bootstrap, target string, args ...string) []callResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, clientBin, append([]string{"-target", target}, args...)...)
	if bootstrap != "" {
		cmd.Env = append(os.Environ(), "GRPC_XDS_BOOTSTRAP="+bootstrap)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client %s: %v\n%s", target, err, stderr.String())
	}
	return parseCalls(string(out))
}

// calls makes n calls to target with the given NAME=VALUE headers and
// counts the results by key.
func calls(t *testing.T, clientBin, bootstrap, target string, n int, header ...string) map[string]int {
	t.Helper()
	args := []string{"-n", fmt.Sprint(n)}
	for _, h := range header {
		args = append(args, "-header", h)
	}
	return tallyCalls(runCalls(t, clientBin, bootstrap, target, args...))
}

// parseCalls reads "ok <server> <duration>" and "error <code> <duration>: <message>" lines.
func parseCalls(out string) []callResult {
	var rs []callResult
	for line := range strings.Lines(out) {
		head, msg, _ := strings.Cut(strings.TrimSpace(line), ":")
		f := strings.Fields(head)
		if len(f) != 3 || (f[0] != "ok" && f[0] != "error") {
			continue
		}
		r := callResult{key: f[1], msg: strings.TrimSpace(msg)}
		if f[0] == "error" {
			r.key = "error " + f[1]
		}
		r.took, _ = time.ParseDuration(f[2])
		rs = append(rs, r)
	}
	return rs
}

func tallyCalls(rs []callResult) map[string]int {
	got := map[string]int{}
	for _, r := range rs {
		got[r.key]++
	}
	return got
}

func countLines(out string) map[string]int { return tallyCalls(parseCalls(out)) }

// eventuallyCalls retries calls until want accepts their counts.
func eventuallyCalls(t *testing.T, what string, call func() map[string]int, want func(map[string]int) error) {
	t.Helper()
	eventually(t, 45*time.Second, what, func() error {
		got := call()
		if err := want(got); err != nil {
			return fmt.Errorf("%v (got %v)", err, got)
		}
		return nil
	})
}

func only(keys ...string) func(map[string]int) error {
	return func(got map[string]int) error {
		for k := range got {
			if !containsString(keys, k) {
				return fmt.Errorf("unexpected %q", k)
			}
		}
		if len(got) == 0 {
			return fmt.Errorf("no result")
		}
		return nil
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestProxyless runs a mesh of proxyless gRPC and sidecar'd workloads:
// proxyless → proxyless, proxyless → sidecar over mTLS, sidecar → proxyless,
// the same split and
// header match seen by a proxyless and a sidecar client, an AccessPolicy
// enforced by a proxyless server, and calls that keep working while the
// agents rotate the SVIDs.
func TestProxyless(t *testing.T) {
	serverBin, clientBin := buildProxylessExamples(t)
	cp := startMeshControl(t)
	cp.apply(t, proxylessMesh)

	// greeter: a proxyless xDS server.
	greeterIP := nextIP()
	greeterAddr := freeAddr(t, greeterIP)
	greeter := startProxylessApp(t, cp, "greeter", "v1", greeterAddr)
	greeterProc := startExample(t, "greeter", serverBin, greeter.bootstrap, "-addr", greeterAddr, "-name", "greeter")

	// echo v1 and v2: plain gRPC servers behind weft proxy sidecars.
	var echoSidecars []*sidecar
	for _, v := range []string{"v1", "v2"} {
		ip := nextIP()
		app := freeAddr(t, ip)
		startExample(t, "echo-"+v, serverBin, "", "-xds=false", "-addr", app, "-name", "echo-"+v)
		echoSidecars = append(echoSidecars, startMeshSidecar(t, cp, sidecarOpts{service: "echo", version: v, app: app, ip: ip}))
	}
	for _, s := range echoSidecars {
		s.waitReady(t)
	}

	// The clients: a proxyless one and a sidecar'd one, both of service "client".
	client := startProxylessApp(t, cp, "client", "", "")
	side := startClient(t, cp, "echo", "greeter")
	proxyless := func(target string, n int, header ...string) func() map[string]int {
		return func() map[string]int { return calls(t, clientBin, client.bootstrap, target, n, header...) }
	}
	viaSidecar := func(n int, header ...string) func() map[string]int {
		return func() map[string]int { return calls(t, clientBin, "", side.upstreams["echo"], n, header...) }
	}

	t.Run("proxyless to proxyless", func(t *testing.T) {
		eventuallyCalls(t, "greeter answers a proxyless client", proxyless("xds:///greeter", 5), only("greeter"))
		got := calls(t, clientBin, client.bootstrap, "xds:///greeter.default", 5)
		if got["greeter"] != 5 {
			t.Fatalf("xds:///greeter.default: got %v, want 5 answers from greeter", got)
		}
		// The calls came over the mesh's mTLS, not the fallback plaintext.
		if b, _ := os.ReadFile(greeterProc.log); !strings.Contains(string(b), "(tls)") {
			t.Fatalf("greeter saw no TLS call:\n%s", b)
		}
	})

	t.Run("proxyless to sidecar over mTLS", func(t *testing.T) {
		eventuallyCalls(t, "both echo workloads answer a proxyless client", proxyless("xds:///echo", 40), func(got map[string]int) error {
			if err := only("echo-v1", "echo-v2")(got); err != nil {
				return err
			}
			if got["echo-v1"] == 0 || got["echo-v2"] == 0 {
				return fmt.Errorf("want answers from both")
			}
			return nil
		})
		// The sidecars' inbound listeners are STRICT mTLS: an answer means the
		// proxyless client presented its SVID and accepted echo's.
	})

	t.Run("sidecar to proxyless server", func(t *testing.T) {
		eventuallyCalls(t, "greeter answers a sidecar'd client", func() map[string]int {
			return calls(t, clientBin, "", side.upstreams["greeter"], 5)
		}, only("greeter"))
	})

	t.Run("split and header match alike", func(t *testing.T) {
		applyConfig(t, cp, echoSplit, side)
		const n = 300
		for _, c := range []struct {
			name string
			run  func(n int, header ...string) func() map[string]int
		}{
			{"proxyless", func(n int, h ...string) func() map[string]int { return proxyless("xds:///echo", n, h...) }},
			{"sidecar", viaSidecar},
		} {
			// The canary rule first: it is also how we know the Route arrived.
			eventuallyCalls(t, c.name+" client: x-canary goes to v2", c.run(20, "x-canary=yes"), only("echo-v2"))
			got := c.run(n)()
			share := float64(got["echo-v1"]) / n
			if got["echo-v1"]+got["echo-v2"] != n || !within(share, 0.8, 0.08) {
				t.Errorf("%s client: split %v, want %d calls with ~80%% to echo-v1", c.name, got, n)
			}
			t.Logf("%s client: %v", c.name, got)
		}
	})

	t.Run("access policy at a proxyless server", func(t *testing.T) {
		cp.apply(t, `
apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: greeter-readers}
spec:
  service: greeter
  rules:
  - name: ops-only
    from: [{services: [ops]}]
`)
		eventuallyCalls(t, "greeter refuses the client", proxyless("xds:///greeter", 3), only("error PermissionDenied"))
		cp.apply(t, `
apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: greeter-readers}
spec:
  service: greeter
  rules:
  - name: clients
    from: [{services: [client]}]
`)
		eventuallyCalls(t, "greeter admits the client", proxyless("xds:///greeter", 3), only("greeter"))
	})

	t.Run("agent rotation keeps calls working", func(t *testing.T) {
		first := map[*proxylessApp]string{}
		for _, a := range []*proxylessApp{client, greeter} {
			s, err := a.serial()
			if err != nil {
				t.Fatal(err)
			}
			first[a] = s
		}
		// One channel calling all along, across both rotations (1m SVIDs
		// rotate at 24-36s of their life).
		long := startExample(t, "long-client", clientBin, client.bootstrap,
			"-target", "xds:///greeter", "-n", "250", "-every", "200ms")
		eventually(t, 70*time.Second, "both agents rotated their SVIDs", func() error {
			for a, s := range first {
				now, err := a.serial()
				if err != nil {
					return err
				}
				if now == s {
					return fmt.Errorf("%s still has SVID %s", a.service, s)
				}
			}
			return nil
		})
		// New connections, with the rotated files on both sides.
		got := calls(t, clientBin, client.bootstrap, "xds:///greeter", 5)
		if got["greeter"] != 5 {
			t.Errorf("after rotation, a new client got %v", got)
		}
		got = calls(t, clientBin, client.bootstrap, "xds:///echo", 20)
		if err := only("echo-v1", "echo-v2")(got); err != nil {
			t.Errorf("after rotation, proxyless → sidecar: %v (got %v)", err, got)
		}
		select {
		case <-long.done:
		case <-time.After(70 * time.Second):
			t.Fatal("the long-running client did not finish")
		}
		b, _ := os.ReadFile(long.log)
		got = countLines(string(b))
		if got["greeter"] != 250 {
			t.Errorf("the long-running client got %v, want 250 answers from greeter", got)
		}
	})
}

const resilienceMesh = `
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: echo}
spec:
  ports: [{name: grpc, port: 9000, protocol: grpc}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: flaky}
spec:
  ports: [{name: grpc, port: 9000, protocol: grpc}]
---
apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: echo}
spec:
  loadBalancer: {type: ringHash, ringHash: {header: x-user}}
---
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: echo}
spec:
  service: echo
  rules:
  - name: abort
    match: [{headers: [{name: x-fault, exact: abort}]}]
    backends: [{}]
    fault: {abort: {grpcStatus: unavailable}}
  - name: delay
    match: [{headers: [{name: x-fault, exact: delay}]}]
    backends: [{}]
    fault: {delay: {fixed: 400ms}}
  - name: slow
    match: [{headers: [{name: x-slow, exact: "yes"}]}]
    backends: [{}]
    timeout: 300ms
---
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: flaky}
spec:
  service: flaky
  rules:
  - name: retried
    match: [{headers: [{name: x-retry, exact: "yes"}]}]
    backends: [{}]
    retries: {attempts: 3, retryOn: [unavailable], retryNonIdempotent: true, backoff: {baseInterval: 5ms, maxInterval: 20ms}}
`

// TestProxylessResilience: the same Route and DestinationPolicy give a
// proxyless client and a sidecar client the same outcomes for fault
// injection, timeouts, retries and ring-hash affinity.
func TestProxylessResilience(t *testing.T) {
	serverBin, clientBin := buildProxylessExamples(t)
	cp := startMeshControl(t)
	cp.apply(t, resilienceMesh)

	var servers []*sidecar
	for _, w := range []struct{ service, version, name string }{
		{"echo", "v1", "echo-a"}, {"echo", "v2", "echo-b"}, {"flaky", "v1", "flaky"},
	} {
		ip := nextIP()
		app := freeAddr(t, ip)
		args := []string{"-xds=false", "-addr", app, "-name", w.name}
		if w.service == "flaky" {
			args = append(args, "-fail-every", "2")
		}
		startExample(t, w.name, serverBin, "", args...)
		servers = append(servers, startMeshSidecar(t, cp, sidecarOpts{service: w.service, version: w.version, app: app, ip: ip}))
	}
	for _, s := range servers {
		s.waitReady(t)
	}
	client := startProxylessApp(t, cp, "client", "", "")
	side := startClient(t, cp, "echo", "flaky")
	waitClusterSize(t, side, "outbound|echo.default", 2)

	type runner func(service string, args ...string) []callResult
	clients := []struct {
		name string
		run  runner
		// timedOut is how a call cut by the Route's timeout ends: gRPC's
		// own deadline (max_stream_duration), or the sidecar's 504.
		timedOut string
	}{
		{"proxyless", func(service string, args ...string) []callResult {
			return runCalls(t, clientBin, client.bootstrap, "xds:///"+service, args...)
		}, "error DeadlineExceeded"},
		{"sidecar", func(service string, args ...string) []callResult {
			return runCalls(t, clientBin, "", side.upstreams[service], args...)
		}, "error Unavailable"},
	}
	// Wait until the proxyless client sees both echo endpoints.
	eventuallyCalls(t, "proxyless client reaches both echo workloads", func() map[string]int {
		got := map[string]int{}
		for _, user := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
			for k, v := range tallyCalls(clients[0].run("echo", "-header", "x-user="+user)) {
				got[k] += v
			}
		}
		return got
	}, func(got map[string]int) error {
		if got["echo-a"] == 0 || got["echo-b"] == 0 {
			return fmt.Errorf("want both echo workloads")
		}
		return only("echo-a", "echo-b")(got)
	})

	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			t.Run("fault abort", func(t *testing.T) {
				got := tallyCalls(c.run("echo", "-n", "10", "-header", "x-fault=abort"))
				if got["error Unavailable"] != 10 {
					t.Errorf("got %v, want 10 × Unavailable", got)
				}
			})
			t.Run("fault delay", func(t *testing.T) {
				for _, r := range c.run("echo", "-n", "5", "-header", "x-fault=delay") {
					if strings.HasPrefix(r.key, "error") || r.took < 400*time.Millisecond {
						t.Errorf("got %s after %s, want an answer after at least 400ms", r.key, r.took)
					}
				}
			})
			t.Run("timeout", func(t *testing.T) {
				for _, r := range c.run("echo", "-n", "3", "-header", "x-slow=yes", "-message", "sleep=3s") {
					// Both end the call at the Route's timeout.
					if r.key != c.timedOut || r.took > 1500*time.Millisecond {
						t.Errorf("got %s after %s (%s), want %s at about 300ms", r.key, r.took, r.msg, c.timedOut)
					}
				}
				if got := tallyCalls(c.run("echo", "-n", "2", "-message", "sleep=600ms")); got["error DeadlineExceeded"]+got["error Unavailable"] != 0 {
					t.Errorf("without the slow rule a 600ms call failed: %v", got)
				}
			})
			t.Run("retries", func(t *testing.T) {
				got := tallyCalls(c.run("flaky", "-n", "20", "-header", "x-retry=yes"))
				if got["flaky"] != 20 {
					t.Errorf("with retries: got %v, want 20 answers", got)
				}
				got = tallyCalls(c.run("flaky", "-n", "20"))
				if got["error Unavailable"] < 5 {
					t.Errorf("without retries: got %v, want about half Unavailable", got)
				}
			})
			t.Run("ring hash", func(t *testing.T) {
				owners := map[string]bool{}
				// Twelve keys: all on one of two workloads would be a 1-in-2048 chance.
				for i := range 12 {
					user := fmt.Sprintf("user-%d", i)
					got := tallyCalls(c.run("echo", "-n", "5", "-header", "x-user="+user))
					if len(got) != 1 || got["echo-a"]+got["echo-b"] != 5 {
						t.Errorf("user %s: got %v, want all 5 calls on one workload", user, got)
					}
					for k := range got {
						owners[k] = true
					}
				}
				if len(owners) != 2 {
					t.Errorf("twelve users all hashed to %v; want both workloads used", owners)
				}
			})
		})
	}
}
