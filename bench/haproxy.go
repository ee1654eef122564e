package main

import (
	"context"
	"path/filepath"
	"strings"
	"text/template"
)

// haproxyConfig is one side of an HAProxy pair: one thread, TLS 1.3 only,
// mutual TLS between the sides. Between the proxies HTTP/1.1 with
// keep-alive carries HTTP (HAProxy's usual setup; its connection reuse
// pools the server-side connections), HTTP/2 carries gRPC.
var haproxyConfig = template.Must(template.New("haproxy").Parse(`global
    nbthread 1
    maxconn 5000
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3
    ssl-server-verify required

defaults
    mode http
    timeout connect 5s
    timeout client 2m
    timeout server 2m
    timeout http-keep-alive 2m

frontend in
    {{- if .Client}}
    # plaintext from the load generator; HTTP/2 prior knowledge is detected
    bind {{.Listen}}{{if .GRPC}} proto h2{{end}}
    {{- else}}
    bind {{.Listen}} ssl crt {{.PKI.ServerBundle}} ca-file {{.PKI.CA}} verify required alpn {{if .GRPC}}h2{{else}}http/1.1{{end}}
    {{- end}}
    default_backend out

backend out
    http-reuse always
    {{- if .Client}}
    server peer {{.Upstream}} ssl crt {{.PKI.ClientBundle}} ca-file {{.PKI.CA}} verify required sni str({{.ServerName}}) verifyhost {{.ServerName}} alpn {{if .GRPC}}h2{{else}}http/1.1{{end}}
    {{- else}}
    server app {{.Upstream}}{{if .GRPC}} proto h2{{end}}
    {{- end}}
`))

// haproxy runs two HAProxy 2.6 instances (Debian's package) per pair.
type haproxy struct{ bin string }

func (h *haproxy) prepare(ctx context.Context, e *env) (err error) {
	h.bin, err = e.tools.debian(ctx, "haproxy", "haproxy")
	return err
}

func (h *haproxy) startPair(_ context.Context, e *env, b backend, at pairAddrs) (*pair, error) {
	dir, err := e.dir("haproxy-" + string(b))
	if err != nil {
		return nil, err
	}
	in, err := freeAddrs(at.client, 1)
	if err != nil {
		return nil, err
	}
	peer, err := freeAddrs(at.server, 1)
	if err != nil {
		return nil, err
	}
	start := func(s peerSide) (*proc, error) {
		file := filepath.Join(dir, s.name()+".cfg")
		if err := writeTemplate(haproxyConfig, file, s); err != nil {
			return nil, err
		}
		// -db: stay in the foreground, no daemon, no master process.
		return e.procs.start(spec{name: "haproxy-" + string(b) + "-" + s.name(), argv: []string{h.bin, "-db", "-f", file}})
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

// version is "HAProxy 2.6.x" from `haproxy -v`.
func (h *haproxy) version(ctx context.Context) string {
	v := versionLine(ctx, h.bin, "-v") // "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"
	if f := strings.Fields(v); len(f) >= 3 {
		return "HAProxy " + f[2]
	}
	return "HAProxy (unknown version)"
}

var (
	_ config    = (*haproxy)(nil)
	_ versioner = (*haproxy)(nil)
)
