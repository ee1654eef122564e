package main

import (
	"errors"
	"fmt"
)

// protocol is how the load generator talks to the client-side proxy.
type protocol string

const (
	http1    protocol = "http1" // HTTP/1.1 POST to the echo server
	h2       protocol = "h2"    // HTTP/2 with prior knowledge (h2c) to the echo server
	grpcPing protocol = "grpc"  // fortio's gRPC ping to a fortio server
)

var protocols = []protocol{http1, h2, grpcPing}

// backend is what sits behind the server-side proxy. Each configuration
// runs one proxy pair per backend, so every pair fronts exactly one app.
type backend string

const (
	echoBackend backend = "echo" // the harness's own HTTP echo server (HTTP/1.1 and h2c)
	grpcBackend backend = "grpc" // `fortio server`'s gRPC port
)

var backends = []backend{echoBackend, grpcBackend}

func (p protocol) backend() backend {
	if p == grpcPing {
		return grpcBackend
	}
	return echoBackend
}

// fortioArgs selects the protocol in a `fortio load` command.
func (p protocol) fortioArgs() []string {
	switch p {
	case h2:
		return []string{"-h2"}
	case grpcPing:
		return []string{"-grpc", "-ping"}
	}
	return nil
}

// target is fortio's destination argument for an entry address.
func (p protocol) target(addr string) string {
	if p == grpcPing {
		return addr
	}
	return "http://" + addr + "/echo"
}

func parseProtocols(s string) ([]protocol, error) {
	var out []protocol
	var errs []error
	for _, f := range splitList(s) {
		p := protocol(f)
		switch p {
		case http1, h2, grpcPing:
			out = append(out, p)
		default:
			errs = append(errs, fmt.Errorf("unknown protocol %q (want http1, h2 or grpc)", f))
		}
	}
	return out, errors.Join(errs...)
}

// backendsOf lists the backends the given protocols need, in a fixed order.
func backendsOf(ps ...[]protocol) []backend {
	need := map[backend]bool{}
	for _, list := range ps {
		for _, p := range list {
			need[p.backend()] = true
		}
	}
	var out []backend
	for _, b := range backends {
		if need[b] {
			out = append(out, b)
		}
	}
	return out
}
