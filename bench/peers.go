package main

import (
	"fmt"
	"os"
	"text/template"
)

// peerSide is what the configuration template of a peer proxy (HAProxy,
// nginx, Caddy) needs for one side of a pair.
type peerSide struct {
	Client     bool   // the client side: plaintext in, mutual TLS out
	GRPC       bool   // the pair fronts the gRPC backend (HTTP/2 end to end)
	Listen     string // where this side listens
	ListenH2   string // nginx's client side: a second, HTTP/2-only listener for h2c
	Upstream   string // where it forwards: the server side, or the backend
	PKI        *pki
	ServerName string // the server side's certificate name
	Dir        string // for the peer's own files (pid, temp, data)
}

func newPeerSide(e *env, b backend, client bool, listen, upstream string) peerSide {
	return peerSide{Client: client, GRPC: b == grpcBackend, Listen: listen, Upstream: upstream,
		PKI: e.pki, ServerName: peerServerName}
}

// name is "client" or "server".
func (s peerSide) name() string {
	if s.Client {
		return "client"
	}
	return "server"
}

// writeTemplate renders t with data into path.
func writeTemplate(t *template.Template, path string, data any) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("%s config: %w", t.Name(), err)
	}
	err = t.Execute(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s config %s: %w", t.Name(), path, err)
	}
	return nil
}

// entriesFor sends every protocol of backend b to one address.
func entriesFor(b backend, addr string) map[protocol]string {
	entries := map[protocol]string{}
	for _, p := range protocols {
		if p.backend() == b {
			entries[p] = addr
		}
	}
	return entries
}
