package apiserver_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/token"
)

func serviceYAML(namespace, name string, port int) string {
	return fmt.Sprintf("apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  ports:\n  - port: %d\n", name, namespace, port)
}

const meshYAML = "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\nspec:\n  trustDomain: weft.local\n"

// credential makes an API credential and returns a client that sends it.
func (e *env) credential(t *testing.T, name string, role token.Role, namespaces ...string) (*client.Client, token.Credential) {
	t.Helper()
	secret, cred, err := e.tokens.CreateCredential(context.Background(), token.CredentialSpec{Name: name, Role: role, Namespaces: namespaces}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e.newClient(t, secret), cred
}

func TestRoles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.client.Apply(ctx, []byte(serviceYAML("web", "front", 80)), "seed.yaml"); err != nil {
		t.Fatal(err)
	}
	_, webToken, err := e.tokens.Create(ctx, "front", "web", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	view, _ := e.credential(t, "viewer", token.RoleView)
	viewShop, _ := e.credential(t, "shop-viewer", token.RoleView, "shop")
	editShop, _ := e.credential(t, "shop-ci", token.RoleEdit, "shop")
	edit, _ := e.credential(t, "ci", token.RoleEdit)

	apply := func(c *client.Client, yaml string) func() error {
		return func() error { _, err := c.Apply(ctx, []byte(yaml), "x.yaml"); return err }
	}
	list := func(c *client.Client, kind, ns string) func() error {
		return func() error { _, err := c.List(ctx, kind, ns); return err }
	}
	createToken := func(c *client.Client, ns string) func() error {
		return func() error { _, err := c.CreateToken(ctx, "cart", ns, time.Hour); return err }
	}
	for _, tc := range []struct {
		name string
		call func() error
		want int    // 0: allowed
		says string // in the 403's message
	}{
		{"view reads", list(view, "Service", ""), 0, ""},
		{"view reads the audit log", func() error { _, err := view.Audit(ctx, 1); return err }, 0, ""},
		{"view applies", apply(view, serviceYAML("shop", "cart", 80)), 403, "role view is read-only"},
		{"view deletes", func() error { return view.Delete(ctx, "Service", "web", "front") }, 403, "role view is read-only"},
		{"view creates a join token", createToken(view, "shop"), 403, "cannot manage join tokens"},
		{"view lists credentials", func() error { _, err := view.Credentials(ctx); return err }, 403, "only the admin role may manage API credentials"},

		{"namespaced view reads its namespace", list(viewShop, "Service", "shop"), 0, ""},
		{"namespaced view reads another", list(viewShop, "Service", "web"), 403, `namespace "web" is outside its namespaces (shop)`},
		{"namespaced view reads every namespace", list(viewShop, "Service", ""), 403, "limited to namespaces shop; name one"},
		{"namespaced view reads the Mesh", list(viewShop, "Mesh", ""), 0, ""},
		{"namespaced view reads one object elsewhere", func() error { _, err := viewShop.Get(ctx, "Service", "web", "front"); return err }, 403, `namespace "web"`},
		{"namespaced view lists every workload", func() error { _, err := viewShop.Workloads(ctx, "", ""); return err }, 403, "name one"},
		{"namespaced view reads the audit log", func() error { _, err := viewShop.Audit(ctx, 1); return err }, 403, "spans every namespace"},

		{"namespaced edit applies in its namespace", apply(editShop, serviceYAML("shop", "cart", 80)), 0, ""},
		{"namespaced edit applies elsewhere", apply(editShop, serviceYAML("shop", "cart", 80)+"---\n"+serviceYAML("web", "x", 80)), 403, `apply Service web/x`},
		{"namespaced edit applies the Mesh", apply(editShop, meshYAML), 403, "cluster-scoped kinds such as Mesh need the admin role"},
		{"namespaced edit deletes elsewhere", func() error { return editShop.Delete(ctx, "Service", "web", "front") }, 403, `namespace "web"`},
		{"namespaced edit creates a join token", createToken(editShop, "shop"), 0, ""},
		{"namespaced edit creates a join token elsewhere", createToken(editShop, "web"), 403, `namespace "web" is outside`},
		{"namespaced edit revokes a token elsewhere", func() error { _, err := editShop.RevokeToken(ctx, webToken.ID); return err }, 403, "revoke join token " + webToken.ID},
		{"namespaced edit creates a credential", func() error {
			_, err := editShop.CreateCredential(ctx, client.CredentialRequest{Name: "x", Role: "admin"})
			return err
		}, 403, "only the admin role"},
		{"edit applies in any namespace", apply(edit, serviceYAML("other", "a", 80)), 0, ""},
		{"edit reads the audit log", func() error { _, err := edit.Audit(ctx, 0); return err }, 0, ""},

		{"admin applies the Mesh", apply(e.client, meshYAML), 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.want == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			apiErr := apiError(t, err, tc.want)
			if !strings.Contains(apiErr.Message, tc.says) {
				t.Errorf("message %q does not say %q", apiErr.Message, tc.says)
			}
		})
	}
	// Nothing a refused apply named was stored.
	if _, err := e.client.Get(ctx, "Service", "web", "x"); !client.IsNotFound(err) {
		t.Errorf("Service web/x after a refused apply: %v, want not found", err)
	}
	// Every refusal is logged with its reason.
	if logs := e.logs.String(); !strings.Contains(logs, `msg="api: request forbidden"`) ||
		!strings.Contains(logs, `credential_name=shop-viewer`) || !strings.Contains(logs, `reason="role view is read-only"`) {
		t.Errorf("log lacks the refusals:\n%s", logs)
	}
	// A namespaced credential lists only its own namespaces' join tokens.
	toks, err := editShop.Tokens(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 1 || toks[0].Namespace != "shop" {
		t.Errorf("namespaced edit lists tokens %+v, want only the one of shop", toks)
	}
}

// A forbidden request gets 403 with a JSON error, not 401: the credential is
// good, it just may not do this.
func TestForbiddenIsJSON(t *testing.T) {
	e := newEnv(t)
	secret, _, err := e.tokens.CreateCredential(context.Background(), token.CredentialSpec{Name: "ro", Role: token.RoleView}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := e.do(t, http.MethodPost, "/api/v1/apply", "Bearer "+secret, strings.NewReader(serviceYAML("default", "a", 80)))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	if !strings.Contains(body.Error, `"ro"`) || !strings.Contains(body.Error, "read-only") {
		t.Errorf("error %q does not name the credential and the reason", body.Error)
	}
}

func TestCredentialLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	created, err := e.client.CreateCredential(ctx, client.CredentialRequest{Name: "deploy", Role: "edit", Namespaces: []string{"shop"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Credential, "weftadm_"+created.ID+"_") || created.Role != "edit" ||
		!slices.Equal(created.Namespaces, []string{"shop"}) || created.ExpiresAt.Sub(created.CreatedAt) != time.Hour {
		t.Errorf("created = %+v", created)
	}
	deploy := e.newClient(t, created.Credential)
	if _, err := deploy.Apply(ctx, []byte(serviceYAML("shop", "cart", 80)), "cart.yaml"); err != nil {
		t.Fatalf("new credential cannot apply in its namespace: %v", err)
	}
	list, err := e.client.Credentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]client.CredentialInfo{}
	for _, c := range list {
		byName[c.Name] = c
	}
	if len(list) != 2 || byName["deploy"].ID != created.ID || byName["test"].Role != "admin" {
		t.Errorf("credentials = %+v", list)
	}
	for _, c := range list {
		if strings.Contains(fmt.Sprint(c), created.Credential[len(created.Credential)-20:]) {
			t.Error("the list shows a secret")
		}
	}
	for _, bad := range []struct {
		req  client.CredentialRequest
		want string
	}{
		{client.CredentialRequest{Name: "x", Role: "root"}, `role "root" is not one of admin, edit, view`},
		{client.CredentialRequest{Role: "view"}, "name: required"},
		{client.CredentialRequest{Name: "x", Role: "admin", Namespaces: []string{"shop"}}, "cannot be limited to namespaces"},
		{client.CredentialRequest{Name: "x", Role: "view", TTL: "soon"}, `ttl: "soon"`},
	} {
		_, err := e.client.CreateCredential(ctx, bad.req)
		if apiErr := apiError(t, err, http.StatusBadRequest); !strings.Contains(apiErr.Message, bad.want) {
			t.Errorf("create %+v: %q, want it to say %q", bad.req, apiErr.Message, bad.want)
		}
	}

	// A credential cannot revoke itself.
	_, err = e.client.RevokeCredential(ctx, byName["test"].ID)
	apiError(t, err, http.StatusConflict)

	if _, err := e.client.RevokeCredential(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	_, err = deploy.Apply(ctx, []byte(serviceYAML("shop", "cart", 81)), "cart.yaml")
	apiError(t, err, http.StatusUnauthorized)
	if !strings.Contains(e.logs.String(), "unknown or revoked: "+created.ID) {
		t.Errorf("log does not say why the revoked credential was refused:\n%s", e.logs.String())
	}
	_, err = e.client.RevokeCredential(ctx, created.ID)
	apiError(t, err, http.StatusNotFound)
	_, err = e.client.RevokeCredential(ctx, "nope")
	apiError(t, err, http.StatusBadRequest)
}

func TestTokenListAndRevoke(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok, err := e.client.CreateToken(ctx, "cart", "shop", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	list, err := e.client.Tokens(ctx, "")
	if err != nil || len(list) != 1 || list[0].ID != tok.ID || list[0].Service != "cart" || list[0].Namespace != "shop" {
		t.Fatalf("Tokens = %+v, %v", list, err)
	}
	if other, err := e.client.Tokens(ctx, "web"); err != nil || len(other) != 0 {
		t.Errorf("Tokens(web) = %+v, %v; want none", other, err)
	}
	if _, err := e.tokens.Verify(ctx, tok.Token); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	info, err := e.client.RevokeToken(ctx, tok.ID)
	if err != nil || info.ID != tok.ID {
		t.Fatalf("RevokeToken = %+v, %v", info, err)
	}
	if _, err := e.tokens.Verify(ctx, tok.Token); err == nil {
		t.Error("a revoked token still verifies")
	}
	_, err = e.client.RevokeToken(ctx, tok.ID)
	apiError(t, err, http.StatusNotFound)
	_, err = e.client.RevokeToken(ctx, "xyz")
	apiError(t, err, http.StatusBadRequest)
}

func TestAuditTrail(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	edit, editCred := e.credential(t, "ci", token.RoleEdit)
	for _, port := range []int{80, 80, 8080} { // the second apply changes nothing
		if _, err := edit.Apply(ctx, []byte(serviceYAML("shop", "cart", port)), "cart.yaml"); err != nil {
			t.Fatal(err)
		}
	}
	if err := edit.Delete(ctx, "Service", "shop", "cart"); err != nil {
		t.Fatal(err)
	}
	tok, err := edit.CreateToken(ctx, "cart", "shop", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := edit.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	created, err := e.client.CreateCredential(ctx, client.CredentialRequest{Name: "temp", Role: "view"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.RevokeCredential(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	// A refused change leaves no entry.
	ro, _ := e.credential(t, "ro", token.RoleView)
	if _, err := ro.Apply(ctx, []byte(serviceYAML("shop", "cart", 9)), "cart.yaml"); err == nil {
		t.Fatal("view applied")
	}

	entries, err := e.client.Audit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, en := range entries {
		c := en.Changes[0]
		got = append(got, fmt.Sprintf("%s %s %s %s/%s %s", en.Who.Name, en.Action, c.Kind, c.Namespace, c.Name, c.Result))
	}
	want := []string{
		"test credential.revoke Credential /" + created.ID + " revoked",
		"test credential.create Credential /" + created.ID + " created",
		"ci token.revoke JoinToken shop/" + tok.ID + " revoked",
		"ci token.create JoinToken shop/" + tok.ID + " created",
		"ci delete Service shop/cart deleted",
		"ci apply Service shop/cart configured",
		"ci apply Service shop/cart created",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit entries, newest first:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	configured := entries[5]
	if configured.Who.CredentialID != editCred.ID || configured.Who.Role != "edit" || configured.Time.IsZero() {
		t.Errorf("who/when of the apply: %+v at %v", configured.Who, configured.Time)
	}
	for _, w := range []string{"--- Service shop/cart (before)\n", "+++ Service shop/cart (after)\n", "-  - port: 80\n", "+  - port: 8080\n"} {
		if !strings.Contains(configured.Changes[0].Diff, w) {
			t.Errorf("diff of the configured Service lacks %q:\n%s", w, configured.Changes[0].Diff)
		}
	}
	if d := entries[4].Changes[0].Diff; !strings.Contains(d, "+++ /dev/null\n") || !strings.Contains(d, "-  - port: 8080\n") {
		t.Errorf("diff of the delete:\n%s", d)
	}
	if d := entries[3].Changes[0].Diff; !strings.Contains(d, "+service: cart\n") || strings.Contains(d, tok.Token) {
		t.Errorf("diff of the token: %s", d)
	}
	if d := entries[1].Changes[0].Diff; !strings.Contains(d, "+role: view\n") || strings.Contains(d, created.Credential) {
		t.Errorf("diff of the credential: %s", d)
	}
	if one, err := e.client.Audit(ctx, 1); err != nil || len(one) != 1 || one[0].ID != entries[0].ID {
		t.Errorf("Audit(1) = %+v, %v", one, err)
	}
	if !strings.Contains(e.logs.String(), `msg=audit audit_id=`+entries[5].ID+` action=apply credential_id=`+editCred.ID) {
		t.Errorf("no structured audit line for the apply:\n%s", e.logs.String())
	}
}

// The largest apply still fits in one transaction with its audit entry.
func TestAuditOfTheLargestApply(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var docs strings.Builder
	for i := range store.MaxApplyObjects {
		fmt.Fprintf(&docs, "---\n%s", serviceYAML("default", fmt.Sprint("s", i), 80))
	}
	results, err := e.client.Apply(ctx, []byte(docs.String()), "many.yaml")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := e.client.Audit(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != store.MaxApplyObjects || len(entries) != 1 || len(entries[0].Changes) != store.MaxApplyObjects {
		t.Errorf("%d results, %d entries; want %d results in one entry", len(results), len(entries), store.MaxApplyObjects)
	}
}
