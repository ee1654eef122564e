package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// env is what the configurations of one run share.
type env struct {
	opts   Options
	procs  *procSet
	tools  *tools
	fortio string // fortio's path
	pki    *pki   // the peers' throwaway CA and certificates
	logf   func(format string, args ...any)

	// backends are the apps behind the server-side proxies, by kind.
	backends map[backend]*backendApp
}

// backendApp is a running echo or gRPC server.
type backendApp struct {
	addr string
	proc *proc
}

// dir returns a directory under the run's work directory, creating it.
func (e *env) dir(name string) (string, error) {
	d := filepath.Join(e.opts.Work, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}
	return d, nil
}

// startBackends starts the apps the run's protocols need and waits until
// they answer.
func (e *env) startBackends(ctx context.Context, need []backend) error {
	e.backends = map[backend]*backendApp{}
	for _, b := range need {
		addrs, err := freeAddrs(backendIP(b), 2)
		if err != nil {
			return err
		}
		var sp spec
		switch b {
		case echoBackend:
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("echo server: %w", err)
			}
			sp = spec{name: "echo-server", argv: []string{self},
				env: []string{roleEnv + "=echo", roleAddrEnv + "=" + addrs[0]}}
		case grpcBackend:
			// fortio serves gRPC on -grpc-port; its HTTP port is unused here.
			sp = spec{name: "grpc-server", argv: []string{e.fortio, "server",
				"-grpc-port", addrs[0], "-http-port", addrs[1],
				"-redirect-port", "disabled", "-tcp-port", "disabled", "-udp-port", "disabled",
				"-loglevel", "warning"}}
		}
		p, err := e.procs.start(sp)
		if err != nil {
			return err
		}
		e.backends[b] = &backendApp{addr: addrs[0], proc: p}
		for _, pr := range e.opts.Protocols {
			if pr.backend() == b {
				if err := e.probe(ctx, pr, addrs[0], p); err != nil {
					return fmt.Errorf("%s: %w", sp.name, err)
				}
				break
			}
		}
	}
	return nil
}

// probeTimeout bounds how long a pair (or backend) may take to carry its
// first request.
const probeTimeout = 60 * time.Second

// probe sends a few requests of protocol p to addr until they all succeed.
// It gives up early if one of the processes behind addr has exited.
func (e *env) probe(ctx context.Context, p protocol, addr string, watch ...*proc) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var last error
	for {
		for _, w := range watch {
			if w != nil && w.exited() {
				return fmt.Errorf("%s exited: %v\n%s", w.name, w.err, w.tail())
			}
		}
		res, err := e.load(ctx, loadRun{proto: p, addr: addr, conns: 1, calls: 4, qps: 0, name: "probe"})
		if err == nil {
			if err = res.check(p); err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s to %s did not succeed within %s: %w", p, addr, probeTimeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
