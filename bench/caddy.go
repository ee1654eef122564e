package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// caddy runs two Caddy 2.11 instances (built with go install into the
// cache) per pair, each with GOMAXPROCS=1. Caddy's reverse proxy keeps its
// defaults: between the sides it negotiates HTTP/2 over mutual TLS.
type caddy struct{ bin string }

func (c *caddy) prepare(ctx context.Context, e *env) (err error) {
	c.bin, err = e.tools.caddy(ctx)
	return err
}

func (c *caddy) startPair(_ context.Context, e *env, b backend, at pairAddrs) (*pair, error) {
	in, err := freeAddrs(at.client, 1)
	if err != nil {
		return nil, err
	}
	peer, err := freeAddrs(at.server, 1)
	if err != nil {
		return nil, err
	}
	start := func(s peerSide) (*proc, error) {
		var err error
		if s.Dir, err = e.dir("caddy-" + string(b) + "-" + s.name()); err != nil {
			return nil, err
		}
		cfg, err := json.MarshalIndent(caddyConfig(s), "", "  ")
		if err != nil {
			return nil, fmt.Errorf("caddy config: %w", err)
		}
		file := filepath.Join(s.Dir, "caddy.json")
		if err := os.WriteFile(file, cfg, 0o644); err != nil {
			return nil, fmt.Errorf("caddy config: %w", err)
		}
		// Caddy keeps its state under the XDG directories: keep them in the run.
		return e.procs.start(spec{name: "caddy-" + string(b) + "-" + s.name(),
			argv: []string{c.bin, "run", "--config", file},
			env: []string{"GOMAXPROCS=1", "HOME=" + s.Dir,
				"XDG_CONFIG_HOME=" + s.Dir, "XDG_DATA_HOME=" + s.Dir}})
	}
	server, err := start(newPeerSide(e, b, false, peer[0], e.backends[b].addr))
	if err != nil {
		return nil, err
	}
	client, err := start(newPeerSide(e, b, true, in[0], peer[0]))
	if err != nil {
		return nil, err
	}
	return &pair{entries: entriesFor(b, in[0]), client: client, server: server}, nil
}

// obj is a JSON object of Caddy's configuration.
type obj = map[string]any

// caddyConfig is one side of a Caddy pair as Caddy's native JSON: no admin
// endpoint, no automatic HTTPS, TLS 1.3 with client certificates required
// on the server side, the throwaway CA on both.
func caddyConfig(s peerSide) obj {
	ca := obj{"provider": "file", "pem_files": []string{s.PKI.CA}}
	transport := obj{"protocol": "http"}
	srv := obj{
		"listen":          []string{s.Listen},
		"automatic_https": obj{"disable": true},
	}
	tlsApp := obj{}
	if s.Client {
		srv["protocols"] = []string{"h1", "h2c"}
		transport["tls"] = obj{
			"ca":                          ca,
			"client_certificate_file":     s.PKI.ClientCert,
			"client_certificate_key_file": s.PKI.ClientKey,
			"server_name":                 s.ServerName,
		}
		transport["keep_alive"] = obj{"max_idle_conns_per_host": 128}
		if s.GRPC {
			transport["versions"] = []string{"2"}
		}
	} else {
		srv["protocols"] = []string{"h1", "h2"}
		// Caddy would otherwise insist, because it checks client
		// certificates, that the Host header name the SNI; a sidecar
		// forwards the app's Host, as the other peers do.
		srv["strict_sni_host"] = false
		srv["tls_connection_policies"] = []obj{{
			"protocol_min":          "tls1.3",
			"client_authentication": obj{"ca": ca, "mode": "require_and_verify"},
		}}
		tlsApp["certificates"] = obj{"load_files": []obj{{"certificate": s.PKI.ServerCert, "key": s.PKI.ServerKey}}}
		transport["versions"] = []string{"1.1"}
		if s.GRPC {
			transport["versions"] = []string{"h2c"}
		}
	}
	srv["routes"] = []obj{{"handle": []obj{{
		"handler":   "reverse_proxy",
		"upstreams": []obj{{"dial": s.Upstream}},
		"transport": transport,
	}}}}
	apps := obj{"http": obj{"servers": obj{"pair": srv}}}
	if len(tlsApp) > 0 {
		apps["tls"] = tlsApp
	}
	return obj{
		"admin":   obj{"disabled": true},
		"logging": obj{"logs": obj{"default": obj{"level": "ERROR"}}},
		"storage": obj{"module": "file_system", "root": filepath.Join(s.Dir, "data")},
		"apps":    apps,
	}
}

// version is the version goInstall checked the binary was built from
// (`caddy version` prints "unknown" for a go-installed build).
func (c *caddy) version(context.Context) string { return "Caddy v" + caddyTool.version }

var (
	_ config    = (*caddy)(nil)
	_ versioner = (*caddy)(nil)
)
