package token_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/token"
)

func TestAdminCredentials(t *testing.T) {
	kv := storetest.New(t).Client()
	iss := newIssuer(t, kv)
	secret, err := iss.CreateAdmin(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "weftadm_") {
		t.Errorf("credential %q does not start with weftadm_", secret)
	}
	id, err := iss.VerifyAdmin(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.SplitN(secret, "_", 3)[1]; id != want {
		t.Errorf("VerifyAdmin = %q, want %q", id, want)
	}

	// Only a hash is stored.
	resp, err := kv.Get(ctx, store.PrefixAdmin+id)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("record: %v %v", resp, err)
	}
	if encoded := strings.SplitN(secret, "_", 3)[2]; strings.Contains(string(resp.Kvs[0].Value), encoded) {
		t.Error("the store holds the secret")
	}

	admins, err := iss.ListCredentials(ctx)
	if err != nil || len(admins) != 1 || admins[0].ID != id || admins[0].Name != "alice@example.com" {
		t.Errorf("ListCredentials = %+v, %v", admins, err)
	}

	// A secret of the right shape that is not the one issued.
	wrong := []byte(secret)
	if last := &wrong[len(wrong)-2]; *last == 'A' {
		*last = 'B'
	} else {
		*last = 'A'
	}
	other, err := iss.CreateAdmin(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	otherID := strings.SplitN(other, "_", 3)[1]

	tests := []struct {
		name, credential string
		want             error
	}{
		{"wrong secret", string(wrong), token.ErrAdminMismatch},
		{"another's secret", "weftadm_" + id + "_" + strings.SplitN(other, "_", 3)[2], token.ErrAdminMismatch},
		{"unknown id", "weftadm_0123456789abcdef_" + strings.SplitN(secret, "_", 3)[2], token.ErrAdminUnknown},
		{"empty", "", token.ErrAdminMalformed},
		{"join token", "weft1.abc.def", token.ErrAdminMalformed},
		{"no secret", "weftadm_" + id, token.ErrAdminMalformed},
		{"short secret", "weftadm_" + id + "_abc", token.ErrAdminMalformed},
		{"upper-case id", "weftadm_" + strings.ToUpper(id) + "_" + strings.SplitN(secret, "_", 3)[2], token.ErrAdminMalformed},
		{"path in id", "weftadm_../tokens_" + strings.SplitN(secret, "_", 3)[2], token.ErrAdminMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := iss.VerifyAdmin(ctx, tc.credential)
			if !errors.Is(err, tc.want) || !errors.Is(err, token.ErrAdminInvalid) {
				t.Fatalf("VerifyAdmin = %v, want %v", err, tc.want)
			}
			if p := strings.SplitN(tc.credential, "_", 3); len(p) == 3 && p[2] != "" && strings.Contains(err.Error(), p[2]) {
				t.Errorf("error %q repeats the secret", err)
			}
		})
	}

	if err := iss.RevokeAdmin(ctx, otherID); err != nil {
		t.Fatal(err)
	}
	if _, err := iss.VerifyAdmin(ctx, other); !errors.Is(err, token.ErrAdminUnknown) {
		t.Errorf("VerifyAdmin after revoke = %v, want ErrAdminUnknown", err)
	}
	if err := iss.RevokeAdmin(ctx, otherID); !errors.Is(err, token.ErrNotFound) {
		t.Errorf("second RevokeAdmin = %v, want ErrNotFound", err)
	}
	if _, err := iss.VerifyAdmin(ctx, secret); err != nil {
		t.Errorf("revoking one credential broke another: %v", err)
	}
}

func TestCreateAdminValidatesName(t *testing.T) {
	iss := newIssuer(t, storetest.New(t).Client())
	for _, name := range []string{"", "has space", "new\nline", strings.Repeat("a", 64)} {
		if _, err := iss.CreateAdmin(ctx, name); err == nil {
			t.Errorf("CreateAdmin(%q) succeeded", name)
		}
	}
}
