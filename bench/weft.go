package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// weftServices declares the two backends as mesh services: the echo app
// speaks HTTP/1.1 to its proxy, fortio's ping server gRPC.
const weftServices = `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: echo}
spec:
  ports: [{name: http, port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: ping}
spec:
  ports: [{name: grpc, port: 8079, protocol: grpc}]
`

// weftService names the mesh services of the pair in front of a backend:
// the server-side proxy fronts the app, the client-side one is the load
// generator's sidecar.
var weftService = map[backend]struct{ client, server string }{
	echoBackend: {client: "loadgen", server: "echo"},
	grpcBackend: {client: "loadgen-grpc", server: "ping"},
}

// weft runs a real `weft control` and two `weft-proxy` sidecars per pair,
// configured by the control plane over xDS, with mutual TLS from the mesh CA.
type weft struct {
	root        string // the module root, whose working tree is built
	weft, proxy string // binaries built from the working tree
	dataDir     string // the control plane's
	grpcAddr    string // the control plane's xDS/Identity/Registry address
	control     *proc
}

// prepare builds weft and weft-proxy, starts the control plane and applies
// the services.
func (w *weft) prepare(ctx context.Context, e *env) error {
	w.root = e.opts.Root
	bin, err := e.dir("weft/bin")
	if err != nil {
		return err
	}
	if w.weft, w.proxy, err = e.tools.weft(ctx, bin); err != nil {
		return err
	}
	if w.dataDir, err = e.dir("weft/control"); err != nil {
		return err
	}
	addrs, err := freeAddrs(controlIP, 3)
	if err != nil {
		return err
	}
	w.grpcAddr = addrs[0]
	w.control, err = e.procs.start(spec{name: "weft-control", argv: []string{w.weft, "control",
		"--data-dir", w.dataDir, "--grpc-addr", addrs[0], "--api-addr", addrs[1],
		"--dashboard-addr", addrs[2], "--log-level", "warn"}})
	if err != nil {
		return err
	}
	file := filepath.Join(w.dataDir, "..", "services.yaml")
	if err := os.WriteFile(file, []byte(weftServices), 0o644); err != nil {
		return fmt.Errorf("weft: %w", err)
	}
	// The first apply also waits for the control plane to come up.
	return w.retry(ctx, "apply the services", func() error {
		_, err := w.cli(ctx, "apply", "-f", file)
		return err
	})
}

// cli runs a weft CLI command against this control plane.
func (w *weft) cli(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{w.weft}, args...)
	argv = append(argv, "--config", filepath.Join(w.dataDir, "config"))
	out, err := runCmd(ctx, nil, argv...)
	return strings.TrimSpace(string(out)), err
}

// retry calls f until it succeeds, the control plane exits, or a minute passes.
func (w *weft) retry(ctx context.Context, what string, f func() error) error {
	deadline := time.Now().Add(probeTimeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if w.control.exited() {
			return fmt.Errorf("weft control exited: %v\n%s", w.control.err, w.control.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("weft: %s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// startPair starts the server-side sidecar in front of the backend and the
// client-side sidecar with an --upstream port for it. Go proxies get one
// processor (GOMAXPROCS=1), as the peers get one worker.
func (w *weft) startPair(ctx context.Context, e *env, b backend, at pairAddrs) (*pair, error) {
	svc := weftService[b]
	server, err := w.sidecar(ctx, e, svc.server, at.server, e.backends[b].addr, nil)
	if err != nil {
		return nil, err
	}
	upstream, err := freeAddrs(at.client, 1)
	if err != nil {
		return nil, err
	}
	client, err := w.sidecar(ctx, e, svc.client, at.client, "", []string{"--upstream", svc.server + "=" + upstream[0]})
	if err != nil {
		return nil, err
	}
	return &pair{entries: entriesFor(b, upstream[0]), client: client, server: server}, nil
}

// sidecar starts one weft-proxy for service on ip with a fresh join token.
// app is the workload's address; a client-side sidecar's workload (the
// load generator) serves nothing, so it gets an unused port.
func (w *weft) sidecar(ctx context.Context, e *env, service, ip, app string, extra []string) (*proc, error) {
	var token string
	err := w.retry(ctx, "create a join token for "+service, func() error {
		var err error
		token, err = w.cli(ctx, "token", "create", "--service", service)
		return err
	})
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(w.dataDir, "..", service+".token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("weft: %w", err)
	}
	addrs, err := freeAddrs(ip, 3)
	if err != nil {
		return nil, err
	}
	if app == "" {
		app = addrs[2]
	}
	argv := []string{w.proxy, "--service", service, "--control", w.grpcAddr, "--token-file", tokenFile,
		"--ca-file", filepath.Join(w.dataDir, "ca.crt"), "--app", app,
		"--inbound", addrs[0], "--admin", addrs[1], "--log-level", "warn"}
	p, err := e.procs.start(spec{name: "weft-proxy-" + service, argv: append(argv, extra...),
		env: []string{"GOMAXPROCS=1"}})
	if err != nil {
		return nil, err
	}
	p.admin = addrs[1]
	return p, nil
}

// version names the commit the working tree is on (it may hold changes
// not yet committed: the tree is what was built and measured).
func (w *weft) version(ctx context.Context) string {
	if v := versionLine(ctx, "git", "-C", w.root, "rev-parse", "--short", "HEAD"); v != "" {
		return "weft (working tree at " + v + ")"
	}
	return "weft (working tree)"
}

var (
	_ config    = (*weft)(nil)
	_ versioner = (*weft)(nil)
)
