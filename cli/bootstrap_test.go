package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBootstrapGRPC: the bootstrap grpc-go reads: mTLS to the control
// plane and the certificate provider from the agent's files, a proxyless
// node, and the server listener template.
func TestBootstrapGRPC(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "bootstrap.json")
	var stdout, stderr bytes.Buffer
	code := RunWith([]string{"bootstrap", "grpc", "--service", "catalog", "--namespace", "shop",
		"--control", "127.0.0.1:15010", "--certs", "/var/run/weft", "--serve", "127.0.0.1:50051", "--out", out},
		strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	files := map[string]any{
		"certificate_file":    "/var/run/weft/cert.pem",
		"private_key_file":    "/var/run/weft/key.pem",
		"ca_certificate_file": "/var/run/weft/bundle.pem",
		"refresh_interval":    "5s",
	}
	want := map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      "127.0.0.1:15010",
			"channel_creds":   []any{map[string]any{"type": "tls", "config": files}},
			"server_features": []any{"xds_v3"},
		}},
		"node": map[string]any{
			"id":      "catalog.shop@grpc/127.0.0.1:50051",
			"cluster": "catalog.shop",
			"metadata": map[string]any{
				"service": "catalog", "namespace": "shop", "version": "", "inbound": "127.0.0.1:50051",
				"app": "", "admin": "", "http_proxy": "", "upstreams": []any{}, "proxyless": "grpc",
			},
		},
		"certificate_providers": map[string]any{
			"weft": map[string]any{"plugin_name": "file_watcher", "config": files},
		},
		"server_listener_resource_name_template": "grpc/server?xds.resource.listening_address=%s",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bootstrap (-want +got):\n%s", diff)
	}
}

func TestBootstrapGRPCErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--control", "127.0.0.1:15010", "--certs", "d"}, "--service is required"},
		{[]string{"--service", "s", "--certs", "d"}, "--control is required"},
		{[]string{"--service", "s", "--control", "127.0.0.1:15010"}, "--certs is required"},
		{[]string{"--service", "s", "--control", "127.0.0.1:15010", "--certs", "d", "--serve", "nowhere"}, `--serve "nowhere"`},
	} {
		var stdout, stderr bytes.Buffer
		code := RunWith(append([]string{"bootstrap", "grpc"}, tc.args...), strings.NewReader(""), &stdout, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want a failure saying %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
