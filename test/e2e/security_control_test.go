package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
)

// TestAPICredentials: the API refuses a call without a credential or with a
// wrong one (401), and a read-only credential that applies (403), each with
// a JSON error and a log line saying why.
func TestAPICredentials(t *testing.T) {
	t.Parallel()
	cp := startControl(t, controlOpts{})

	for _, tc := range []struct{ name, auth string }{
		{"no credential", ""},
		{"wrong credential", "Bearer weftadm_0123456789abcdef_" + strings.Repeat("A", 43)},
		{"not a credential", "Bearer hunter2"},
	} {
		status, body := rawAPI(t, cp, http.MethodGet, "/api/v1/resources?kind=Service", tc.auth, "")
		if status != http.StatusUnauthorized || body.Error == "" {
			t.Errorf("%s: status %d, body %+v; want 401 with a JSON error", tc.name, status, body)
		}
	}

	// A read-only credential, made with the CLI by the admin.
	secret, stderr := mustCLI(t, cp, "", "credential", "create", "dashboards", "--role", "view")
	secret = strings.TrimSpace(secret)
	if !strings.Contains(stderr, "view in all") {
		t.Errorf("credential create said %q", stderr)
	}
	if status, _ := rawAPI(t, cp, http.MethodGet, "/api/v1/resources?kind=Service", "Bearer "+secret, ""); status != http.StatusOK {
		t.Errorf("read-only credential reading: status %d, want 200", status)
	}
	status, body := rawAPI(t, cp, http.MethodPost, "/api/v1/apply", "Bearer "+secret, serviceDoc("web", 8080))
	if status != http.StatusForbidden || !strings.Contains(body.Error, "role view is read-only") {
		t.Errorf("read-only credential applying: status %d, body %+v; want 403 saying it is read-only", status, body)
	}
	if _, err := cp.client.Get(context.Background(), "Service", "default", "web"); !client.IsNotFound(err) {
		t.Errorf("the refused apply stored something: %v", err)
	}

	eventually(t, 5*time.Second, "refusals logged with their reasons", func() error {
		out := cp.output()
		for _, want := range []string{
			`msg="api: request refused" reason="no credential"`,
			`msg="api: request refused" reason="token: invalid API credential: unknown or revoked: 0123456789abcdef"`,
			`msg="api: request forbidden"`,
			`credential_name=dashboards`,
			`reason="role view is read-only"`,
		} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("control plane log lacks %s", want)
			}
		}
		return nil
	})
}

// TestJoinTokenExpiredAndRevoked: a join token that a proxy used is refused
// when replayed after it expired, and a revoked token is refused outright;
// the control plane logs each refusal with its reason.
func TestJoinTokenExpiredAndRevoked(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a one-minute join token to expire")
	}
	t.Parallel()
	cp := startControl(t, controlOpts{})
	ctx := context.Background()

	short, err := cp.client.CreateToken(ctx, "web", "default", time.Minute) // the shortest a token lives
	if err != nil {
		t.Fatal(err)
	}
	startSidecar(t, cp, sidecarOpts{service: "web", token: short.Token}).waitReady(t)

	// Revoked with the CLI before any proxy used it.
	revoked, err := cp.client.CreateToken(ctx, "web", "default", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := mustCLI(t, cp, "", "token", "list"); !strings.Contains(out, revoked.ID) || !strings.Contains(out, short.ID) {
		t.Errorf("token list does not show both tokens:\n%s", out)
	}
	if out, _ := mustCLI(t, cp, "", "token", "revoke", revoked.ID); !strings.Contains(out, "revoked") {
		t.Errorf("token revoke said %q", out)
	}
	refused(t, startSidecar(t, cp, sidecarOpts{service: "web", token: revoked.Token}), "unknown or revoked")
	waitLog(t, cp, "refused to issue SVID", "auth_refused=revoked", "token "+revoked.ID)

	// Tokens are accepted up to 30 s past their expiry, for replicas whose
	// clocks disagree a little.
	time.Sleep(time.Until(short.ExpiresAt.Add(31 * time.Second)))
	refused(t, startSidecar(t, cp, sidecarOpts{service: "web", token: short.Token}), "expired")
	waitLog(t, cp, "refused to issue SVID", "auth_refused=expired", "token "+short.ID)
}

// TestAuditLog: apply and delete leave audit entries with who, what and a
// diff, readable with `weft audit` and logged, and still there after the
// control plane restarts.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	cp := startControl(t, controlOpts{})
	ctx := context.Background()

	// An edit credential limited to namespace default makes the changes.
	secret, _ := mustCLI(t, cp, "", "credential", "create", "deployer", "--role", "edit", "--namespace", "default")
	editCfg := credentialConfig(t, cp, strings.TrimSpace(secret))
	file := filepath.Join(t.TempDir(), "web.yaml")
	for _, port := range []int{8080, 9090} {
		if err := os.WriteFile(file, []byte(serviceDoc("web", port)), 0o644); err != nil {
			t.Fatal(err)
		}
		mustCLI(t, cp, editCfg, "apply", "-f", file)
	}
	mustCLI(t, cp, editCfg, "delete", "service", "web")
	// What the credential may not do is refused and leaves no entry.
	if _, stderr, code := runCLI(t, cp, editCfg, "delete", "mesh", "default"); code == 0 || !strings.Contains(stderr, "need the admin role") {
		t.Errorf("deployer deleting the Mesh: exit %d, %q", code, stderr)
	}

	check := func(when string) {
		t.Helper()
		entries, err := cp.client.Audit(ctx, 10)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		var got []string
		for _, e := range entries {
			if e.Action == client.AuditCredentialCreate {
				continue
			}
			c := e.Changes[0]
			got = append(got, fmt.Sprintf("%s %s %s %s/%s %s", e.Who.Name, e.Action, c.Kind, c.Namespace, c.Name, c.Result))
		}
		want := []string{
			"deployer delete Service default/web deleted",
			"deployer apply Service default/web configured",
			"deployer apply Service default/web created",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: audit entries:\n%s\nwant:\n%s", when, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if d := entries[1].Changes[0].Diff; !strings.Contains(d, "-  - port: 8080\n") || !strings.Contains(d, "+  - port: 9090\n") {
			t.Errorf("%s: diff of the second apply:\n%s", when, d)
		}
		if d := entries[0].Changes[0].Diff; !strings.Contains(d, "+++ /dev/null\n") || !strings.Contains(d, "-  - port: 9090\n") {
			t.Errorf("%s: diff of the delete:\n%s", when, d)
		}
		out, _ := mustCLI(t, cp, "", "audit", "--limit", "3", "--diff")
		if !strings.Contains(out, "apply by deployer/") || !strings.Contains(out, "    +  - port: 9090") {
			t.Errorf("%s: weft audit --diff:\n%s", when, out)
		}
	}
	check("before the restart")
	waitLog(t, cp, "msg=audit", "action=delete", "credential_name=deployer", "kind=Service", "name=web", "result=deleted")

	if err := cp.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	cp.restart(t)
	check("after a restart")
}

// rawAPI calls the API over TLS with the given Authorization header and
// decodes the JSON error of a failed call.
func rawAPI(t *testing.T, cp *controlPlane, method, path, auth, body string) (int, client.ErrorResponse) {
	t.Helper()
	ca, err := os.ReadFile(cp.caFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	req, err := http.NewRequest(method, "https://"+cp.api+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e client.ErrorResponse
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: status %d with Content-Type %q, want JSON", method, path, resp.StatusCode, ct)
		}
		if err := json.Unmarshal(data, &e); err != nil {
			t.Errorf("%s %s: status %d, body %q is not a JSON error", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, e
}

// mustCLI runs the weft CLI with config (the control plane's own admin
// config when empty) and fails the test unless it succeeds.
func mustCLI(t *testing.T, cp *controlPlane, config string, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, code := runCLI(t, cp, config, args...)
	if code != 0 {
		t.Fatalf("weft %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout, stderr
}

func runCLI(t *testing.T, cp *controlPlane, config string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	if config == "" {
		config = filepath.Join(cp.dataDir, "config")
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(weftBin, append([]string{"--config", config}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("run weft %s: %v", strings.Join(args, " "), err)
		}
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// credentialConfig writes a client config like the control plane's, with
// another credential.
func credentialConfig(t *testing.T, cp *controlPlane, secret string) string {
	t.Helper()
	cfg, err := client.LoadConfig(filepath.Join(cp.dataDir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server = "https://" + cp.api
	cfg.Token = secret
	path := filepath.Join(t.TempDir(), "config")
	if err := client.WriteConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

// refused waits for a proxy to exit because the control plane refused its
// join token, and checks that it says why.
func refused(t *testing.T, s *sidecar, why string) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("a proxy whose token should be refused (%s) kept running:\n%s", why, s.output())
	}
	if out := s.output(); s.err == nil || !strings.Contains(out, why) {
		t.Fatalf("proxy exit %v, want a refusal saying %q:\n%s", s.err, why, out)
	}
}

// waitLog waits for one line of the control plane's log to hold every want.
func waitLog(t *testing.T, cp *controlPlane, wants ...string) {
	t.Helper()
	eventually(t, 5*time.Second, "control plane logs "+strings.Join(wants, " "), func() error {
		for _, line := range strings.Split(cp.output(), "\n") {
			if containsAll(line, wants) {
				return nil
			}
		}
		return fmt.Errorf("no log line has all of %q", wants)
	})
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func serviceDoc(name string, port int) string {
	return fmt.Sprintf("apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata:\n  name: %s\nspec:\n  ports:\n  - port: %d\n", name, port)
}
