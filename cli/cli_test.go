package cli

import (
	"bytes"
	"context"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/audit"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/token"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// issuedAt is the token issuer's clock in tests, so expiries are stable.
var issuedAt = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// startControlPlane serves the real API over TLS on a fresh embedded etcd,
// with two registered workloads, and returns the path of a client config for it.
func startControlPlane(t *testing.T) (configPath string) {
	t.Helper()
	ctx := context.Background()
	st := storetest.New(t)
	issuer, err := token.NewIssuer(ctx, st.Client(), token.WithClock(func() time.Time { return issuedAt }))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := issuer.CreateAdmin(ctx, "cli-test")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*meshv1.Workload{
		{Id: "payments.shop@127.0.1.2:15006", Service: "payments", Namespace: "shop", Version: "v1",
			Address: "127.0.1.2:15006", AppAddress: "127.0.1.2:8080", AdminAddress: "127.0.1.2:15000", Ready: true},
		{Id: "payments.shop@127.0.1.3:15006", Service: "payments", Namespace: "shop", Version: "v2",
			Address: "127.0.1.3:15006", AppAddress: "127.0.1.3:8080", AdminAddress: "127.0.1.3:15000"},
		{Id: "catalog.default@127.0.1.4:15006", Service: "catalog", Namespace: "default",
			Address: "127.0.1.4:15006", Ready: true},
	} {
		if _, err := st.PutWorkload(ctx, w, clientv3.NoLease); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewTLSServer(apiserver.New(apiserver.Options{
		Store: st, Workloads: st, Tokens: issuer, Auth: issuer,
		Audit:       audit.New(st.Client(), audit.Options{Log: slog.New(slog.DiscardHandler)}),
		TrustDomain: "weft.local", Version: "v0.9.0-server",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	t.Cleanup(srv.Close)
	configPath = filepath.Join(t.TempDir(), "config")
	err = client.WriteConfig(configPath, client.Config{
		Server: srv.URL,
		CACert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})),
		Token:  admin,
	})
	if err != nil {
		t.Fatal(err)
	}
	return configPath
}

// cliCase is one run of the command line and the golden file of its output.
type cliCase struct {
	golden string
	args   []string
	stdin  string
}

// run runs the command line and renders what it did as the golden file holds it.
func run(t *testing.T, c cliCase) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := RunWith(c.args, strings.NewReader(c.stdin), &stdout, &stderr)
	var b strings.Builder
	fmt.Fprintf(&b, "$ weft %s\n", strings.Join(c.args, " "))
	fmt.Fprintf(&b, "exit %d\n", code)
	fmt.Fprintf(&b, "--- stdout\n%s", stdout.String())
	fmt.Fprintf(&b, "--- stderr\n%s", stderr.String())
	return b.String()
}

// volatile matches what changes from run to run, and what replaces it.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`--config \S+`), "--config CONFIG"},
	{regexp.MustCompile(`https://127\.0\.0\.1:\d+`), "https://127.0.0.1:PORT"},
	{regexp.MustCompile(`weft1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`), "TOKEN"},
	{regexp.MustCompile(`token [0-9a-f]{16,} for`), "token ID for"},
	{regexp.MustCompile(`("resourceVersion": |resourceVersion: )\d+`), "${1}RV"},
}

func normalize(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return s
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	got = normalize(got)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cli -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test ./cli -update to accept):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// TestCommands runs the client commands, in order, against one control
// plane: later cases see what earlier ones applied and deleted.
func TestCommands(t *testing.T) {
	old := Version
	Version = "v0.9.0-test"
	t.Cleanup(func() { Version = old })
	cfg := startControlPlane(t)
	services, err := os.ReadFile("testdata/resources/cache.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []cliCase{
		{golden: "apply", args: []string{"apply", "-f", "testdata/resources/mesh.yaml", "-f", "testdata/resources/services.yaml"}},
		{golden: "apply-unchanged", args: []string{"apply", "-f", "testdata/resources/services.yaml"}},
		{golden: "apply-invalid", args: []string{"apply", "-f", "testdata/resources/invalid.yaml"}},
		{golden: "apply-stdin", args: []string{"apply", "-f", "-"}, stdin: string(services)},
		{golden: "apply-dir", args: []string{"apply", "-f", "testdata/resources"}},
		{golden: "apply-no-files", args: []string{"apply"}},
		{golden: "get-services", args: []string{"get", "services"}},
		{golden: "get-services-all", args: []string{"get", "svc", "-A"}},
		{golden: "get-service-yaml", args: []string{"get", "service", "payments", "-n", "shop", "-o", "yaml"}},
		{golden: "get-services-json", args: []string{"get", "Service", "-n", "shop", "-o", "json"}},
		{golden: "get-services-empty", args: []string{"get", "services", "-n", "empty"}},
		{golden: "get-mesh", args: []string{"get", "mesh"}},
		{golden: "get-mesh-namespace", args: []string{"get", "mesh", "-n", "shop"}},
		{golden: "get-not-found", args: []string{"get", "service", "nope"}},
		{golden: "get-unknown-kind", args: []string{"get", "gizmos"}},
		{golden: "get-bad-output", args: []string{"get", "services", "-o", "xml"}},
		{golden: "get-workloads", args: []string{"get", "workloads", "-A"}},
		{golden: "get-workloads-service-yaml", args: []string{"get", "wl", "payments", "-n", "shop", "-o", "yaml"}},
		{golden: "get-workloads-json", args: []string{"get", "workloads", "-o", "json"}},
		{golden: "delete", args: []string{"delete", "service", "cache"}},
		{golden: "delete-not-found", args: []string{"delete", "service", "cache"}},
		{golden: "delete-workload", args: []string{"delete", "workloads", "payments"}},
		{golden: "token-create", args: []string{"token", "create", "--service", "payments", "-n", "shop", "--ttl", "1h"}},
		{golden: "token-create-no-service", args: []string{"token", "create"}},
		{golden: "token-create-bad-ttl", args: []string{"token", "create", "--service", "payments", "--ttl", "10s"}},
		{golden: "version", args: []string{"version"}},
		{golden: "unknown-flag", args: []string{"get", "services", "--bogus"}},
		{golden: "unknown-command", args: []string{"gt", "services"}},
	} {
		t.Run(c.golden, func(t *testing.T) {
			c.args = append([]string{"--config", cfg}, c.args...)
			checkGolden(t, c.golden, run(t, c))
		})
	}
}

// TestWithoutControlPlane covers what works, and how what cannot work
// fails, when there is no client config.
func TestWithoutControlPlane(t *testing.T) {
	old := Version
	Version = "v0.9.0-test"
	t.Cleanup(func() { Version = old })
	for _, c := range []cliCase{
		{golden: "no-config", args: []string{"--config", "testdata/no-such-config", "get", "services"}},
		{golden: "version-no-config", args: []string{"--config", "testdata/no-such-config", "version"}},
		{golden: "version-client", args: []string{"version", "--client"}},
	} {
		t.Run(c.golden, func(t *testing.T) { checkGolden(t, c.golden, run(t, c)) })
	}
}
