package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/client"
)

// weft runs the command line against config and returns its streams.
func weft(t *testing.T, config string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = RunWith(append([]string{"--config", config}, args...), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func mustWeft(t *testing.T, config string, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, code := weft(t, config, args...)
	if code != 0 {
		t.Fatalf("weft %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout, stderr
}

func TestTokenListRevoke(t *testing.T) {
	cfg := startControlPlane(t)
	_, stderr := mustWeft(t, cfg, "token", "create", "--service", "payments", "-n", "shop", "--ttl", "1h")
	id := regexp.MustCompile(`token ([0-9a-f]{32}) for`).FindStringSubmatch(stderr)
	if id == nil {
		t.Fatalf("no token ID in %q", stderr)
	}
	out, _ := mustWeft(t, cfg, "token", "list")
	if !regexp.MustCompile(`(?m)^ID\s+SERVICE\s+NAMESPACE\s+EXPIRES\s+STATUS\n` + id[1] + `\s+payments\s+shop\s+\S+\s+valid$`).MatchString(out) {
		t.Errorf("token list:\n%s", out)
	}
	out, _ = mustWeft(t, cfg, "token", "revoke", id[1])
	if out != "token "+id[1]+" for service payments in namespace shop revoked\n" {
		t.Errorf("token revoke: %q", out)
	}
	if out, stderr := mustWeft(t, cfg, "token", "list"); out != "" || stderr != "No join tokens found.\n" {
		t.Errorf("token list after revoke: %q %q", out, stderr)
	}
	_, stderr, code := weft(t, cfg, "token", "revoke", id[1])
	if code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("second revoke: exit %d, %q", code, stderr)
	}
}

func TestCredentialAndAudit(t *testing.T) {
	cfg := startControlPlane(t)
	secret, stderr := mustWeft(t, cfg, "credential", "create", "ci", "--role", "edit", "-n", "shop")
	secret = strings.TrimSpace(secret)
	m := regexp.MustCompile(`^credential ([0-9a-f]{16}) for ci: edit in shop, never expires\n$`).FindStringSubmatch(stderr)
	if !strings.HasPrefix(secret, "weftadm_") || m == nil {
		t.Fatalf("credential create: %q %q", secret, stderr)
	}
	id := m[1]
	out, _ := mustWeft(t, cfg, "credential", "list")
	if !regexp.MustCompile(`(?m)^`+id+`\s+ci\s+edit\s+shop\s+\S+\s+never$`).MatchString(out) || strings.Contains(out, secret) {
		t.Errorf("credential list:\n%s", out)
	}
	if _, stderr, code := weft(t, cfg, "credential", "create", "x"); code != 1 || !strings.Contains(stderr, "--role is required") {
		t.Errorf("create without a role: exit %d %q", code, stderr)
	}

	// The new credential may change shop, and nothing else.
	base, err := client.LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base.Token = secret
	ciCfg := filepath.Join(t.TempDir(), "ci")
	if err := client.WriteConfig(ciCfg, base); err != nil {
		t.Fatal(err)
	}
	cart := filepath.Join(t.TempDir(), "cart.yaml")
	if err := os.WriteFile(cart, []byte("apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata:\n  name: cart\n  namespace: shop\nspec:\n  ports:\n  - port: 80\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustWeft(t, ciCfg, "apply", "-f", cart)
	_, stderr, code := weft(t, ciCfg, "apply", "-f", "testdata/resources/services.yaml")
	if code != 1 || !strings.Contains(stderr, `namespace "default" is outside its namespaces (shop)`) {
		t.Errorf("ci applying in default: exit %d %q", code, stderr)
	}
	_, stderr, code = weft(t, ciCfg, "apply", "-f", "testdata/resources/mesh.yaml")
	if code != 1 || !strings.Contains(stderr, "cluster-scoped kinds such as Mesh need the admin role") {
		t.Errorf("ci applying the Mesh: exit %d %q", code, stderr)
	}
	if _, stderr, code := weft(t, ciCfg, "credential", "list"); code != 1 || !strings.Contains(stderr, "only the admin role may manage API credentials") {
		t.Errorf("ci listing credentials: exit %d %q", code, stderr)
	}

	out, _ = mustWeft(t, cfg, "audit", "--limit", "2")
	if !regexp.MustCompile(`(?m)^TIME\s+WHO\s+ROLE\s+ACTION\s+OBJECT\s+RESULT\n\S+\s+ci/` + id + `\s+edit\s+apply\s+Service shop/cart\s+created$`).MatchString(out) {
		t.Errorf("audit:\n%s", out)
	}
	out, _ = mustWeft(t, cfg, "audit", "--diff")
	if !strings.Contains(out, "credential.create by cli-test/") || !strings.Contains(out, "    +role: edit\n") ||
		!strings.Contains(out, "    --- /dev/null\n") {
		t.Errorf("audit --diff:\n%s", out)
	}
	out, _ = mustWeft(t, cfg, "audit", "-o", "json", "--limit", "1")
	var list client.AuditList
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 1 || list.Items[0].Who.Name != "ci" {
		t.Errorf("audit -o json: %v\n%s", err, out)
	}

	out, _ = mustWeft(t, cfg, "credential", "revoke", id)
	if out != "credential "+id+" (ci) revoked\n" {
		t.Errorf("credential revoke: %q", out)
	}
	if _, stderr, code := weft(t, ciCfg, "get", "services", "-n", "shop"); code != 1 || !strings.Contains(stderr, "invalid API credential") {
		t.Errorf("revoked credential: exit %d %q", code, stderr)
	}
}
