package main

import (
	"context"
	"path/filepath"
	"strings"
	"text/template"
)

// nginxConfig is one side of an nginx pair: one worker, TLS 1.3 only,
// mutual TLS between the sides, pooled keep-alive connections upstream.
// nginx 1.22 proxies HTTP/1.1 upstream (proxy_pass) and HTTP/2 only for
// gRPC (grpc_pass); a plaintext listener is either HTTP/1.1 or h2c, so the
// client side of the echo pair has one of each.
var nginxConfig = template.Must(template.New("nginx").Parse(`worker_processes 1;
daemon off;
master_process on;
pid {{.Dir}}/nginx.pid;
error_log stderr warn;

events {
    worker_connections 16384;
}

http {
    access_log off;
    client_body_temp_path {{.Dir}}/client_body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;

    upstream up {
        server {{.Upstream}};
        keepalive 128;
        keepalive_requests 1000000;
        keepalive_timeout 120s;
    }

    server {
{{- if .Client}}
{{- if .GRPC}}
        listen {{.Listen}} http2;
{{- else}}
        listen {{.Listen}};
        listen {{.ListenH2}} http2;
{{- end}}
{{- else}}
        listen {{.Listen}} ssl{{if .GRPC}} http2{{end}};
        ssl_protocols TLSv1.3;
        ssl_certificate {{.PKI.ServerCert}};
        ssl_certificate_key {{.PKI.ServerKey}};
        ssl_client_certificate {{.PKI.CA}};
        ssl_verify_client on;
{{- end}}

        location / {
{{- if .GRPC}}
            grpc_pass {{if .Client}}grpcs{{else}}grpc{{end}}://up;
{{- if .Client}}
            grpc_ssl_protocols TLSv1.3;
            grpc_ssl_certificate {{.PKI.ClientCert}};
            grpc_ssl_certificate_key {{.PKI.ClientKey}};
            grpc_ssl_trusted_certificate {{.PKI.CA}};
            grpc_ssl_verify on;
            grpc_ssl_name {{.ServerName}};
            grpc_ssl_server_name on;
{{- end}}
{{- else}}
            proxy_pass {{if .Client}}https{{else}}http{{end}}://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
{{- if .Client}}
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_certificate {{.PKI.ClientCert}};
            proxy_ssl_certificate_key {{.PKI.ClientKey}};
            proxy_ssl_trusted_certificate {{.PKI.CA}};
            proxy_ssl_verify on;
            proxy_ssl_name {{.ServerName}};
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
{{- end}}
{{- end}}
        }
    }
}
`))

// nginx runs two nginx 1.22 instances (Debian's package) per pair, each a
// master and one worker in the foreground.
type nginx struct{ bin string }

func (n *nginx) prepare(ctx context.Context, e *env) (err error) {
	n.bin, err = e.tools.debian(ctx, "nginx", "nginx")
	return err
}

func (n *nginx) startPair(_ context.Context, e *env, b backend, at pairAddrs) (*pair, error) {
	in, err := freeAddrs(at.client, 2)
	if err != nil {
		return nil, err
	}
	peer, err := freeAddrs(at.server, 1)
	if err != nil {
		return nil, err
	}
	start := func(s peerSide) (*proc, error) {
		var err error
		if s.Dir, err = e.dir("nginx-" + string(b) + "-" + s.name()); err != nil {
			return nil, err
		}
		file := filepath.Join(s.Dir, "nginx.conf")
		if err := writeTemplate(nginxConfig, file, s); err != nil {
			return nil, err
		}
		// -e: log to stderr from the start, not to the package's log file.
		return e.procs.start(spec{name: "nginx-" + string(b) + "-" + s.name(),
			argv: []string{n.bin, "-p", s.Dir, "-c", file, "-e", "stderr"}})
	}
	server, err := start(newPeerSide(e, b, false, peer[0], e.backends[b].addr))
	if err != nil {
		return nil, err
	}
	cs := newPeerSide(e, b, true, in[0], peer[0])
	entries := entriesFor(b, in[0])
	if b == echoBackend {
		cs.ListenH2 = in[1]
		entries[h2] = in[1]
	}
	client, err := start(cs)
	if err != nil {
		return nil, err
	}
	return &pair{entries: entries, client: client, server: server}, nil
}

// version is "nginx 1.22.x" from `nginx -v`.
func (n *nginx) version(ctx context.Context) string {
	v := versionLine(ctx, n.bin, "-v") // "nginx version: nginx/1.22.1"
	if _, after, ok := strings.Cut(v, "nginx/"); ok {
		return "nginx " + after
	}
	return "nginx (unknown version)"
}

var (
	_ config    = (*nginx)(nil)
	_ versioner = (*nginx)(nil)
)
