package token_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/token"
)

func TestScopedCredential(t *testing.T) {
	kv := storetest.New(t).Client()
	iss := newIssuer(t, kv)
	secret, created, err := iss.CreateCredential(ctx, token.CredentialSpec{
		Name: "ci", Role: token.RoleEdit, Namespaces: []string{"web", "shop", "web"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"shop", "web"}; strings.Join(created.Namespaces, ",") != strings.Join(want, ",") {
		t.Errorf("namespaces = %v, want %v (sorted, deduplicated)", created.Namespaces, want)
	}
	got, err := iss.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != created.ID || got.Role != token.RoleEdit || got.Name != "ci" || !got.ExpiresAt.IsZero() {
		t.Errorf("Authenticate = %+v, want %+v", got, created)
	}
	if !got.InNamespace("shop") || got.InNamespace("default") {
		t.Errorf("InNamespace: shop %v, default %v; want true, false", got.InNamespace("shop"), got.InNamespace("default"))
	}
	if s := got.Scope(); s != "edit in shop, web" {
		t.Errorf("Scope = %q", s)
	}

	// Records written before roles existed are admins.
	admin, err := iss.CreateAdmin(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := iss.Authenticate(ctx, admin); err != nil || c.Role != token.RoleAdmin || !c.InNamespace("anything") {
		t.Errorf("admin: %+v, %v", c, err)
	}
}

func TestCredentialSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		spec token.CredentialSpec
		want string
	}{
		{token.CredentialSpec{Name: "a", Role: "root"}, `role "root" is not one of admin, edit, view`},
		{token.CredentialSpec{Name: "a"}, `role "" is not one of`},
		{token.CredentialSpec{Name: "a b", Role: token.RoleView}, `credential name "a b"`},
		{token.CredentialSpec{Name: "a", Role: token.RoleAdmin, Namespaces: []string{"x"}}, "cannot be limited to namespaces"},
		{token.CredentialSpec{Name: "a", Role: token.RoleView, Namespaces: []string{"Shop"}}, `namespace "Shop" is not a DNS label`},
		{token.CredentialSpec{Name: "a", Role: token.RoleView, TTL: time.Second}, "lifetime 1s is outside"},
	} {
		err := tc.spec.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want it to say %q", tc.spec, err, tc.want)
		}
	}
	if err := (token.CredentialSpec{Name: "a", Role: token.RoleView, Namespaces: []string{"shop"}, TTL: time.Hour}).Validate(); err != nil {
		t.Errorf("valid spec: %v", err)
	}
}

func TestCredentialExpires(t *testing.T) {
	kv := storetest.New(t).Client()
	now := time.Now()
	iss := newIssuer(t, kv, token.WithClock(func() time.Time { return now }))
	secret, _, err := iss.CreateCredential(ctx, token.CredentialSpec{Name: "temp", Role: token.RoleView, TTL: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Authenticate(ctx, secret); err != nil {
		t.Fatalf("fresh credential: %v", err)
	}
	later := newIssuer(t, kv, token.WithClock(func() time.Time { return now.Add(2 * time.Hour) }))
	_, err = later.Authenticate(ctx, secret)
	if !errors.Is(err, token.ErrAdminExpired) || !errors.Is(err, token.ErrAdminInvalid) {
		t.Errorf("expired credential: %v, want ErrAdminExpired", err)
	}
}

// The operation a caller passes is committed with the change, or not at all.
func TestRecordedChanges(t *testing.T) {
	kv := storetest.New(t).Client()
	iss := newIssuer(t, kv)
	mark := func(key string) func(any) (clientv3.Op, error) {
		return func(any) (clientv3.Op, error) { return clientv3.OpPut(key, "x"), nil }
	}
	exists := func(key string) bool {
		t.Helper()
		resp, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Kvs) == 1
	}

	_, rec, err := iss.CreateRecorded(ctx, "web", "shop", time.Hour, func(r token.Record) (clientv3.Op, error) { return mark("/t/created/" + r.ID)(r) })
	if err != nil || !exists("/t/created/"+rec.ID) {
		t.Fatalf("CreateRecorded: %v, audit written %v", err, exists("/t/created/"+rec.ID))
	}
	if got, err := iss.Lookup(ctx, rec.ID); err != nil || got != rec {
		t.Errorf("Lookup = %+v, %v; want %+v", got, err, rec)
	}
	revoked, err := iss.RevokeRecorded(ctx, rec.ID, func(r token.Record) (clientv3.Op, error) { return mark("/t/revoked/" + r.ID)(r) })
	if err != nil || revoked != rec || !exists("/t/revoked/"+rec.ID) {
		t.Errorf("RevokeRecorded = %+v, %v", revoked, err)
	}
	if _, err := iss.Lookup(ctx, rec.ID); !errors.Is(err, token.ErrNotFound) {
		t.Errorf("Lookup after revoke = %v, want ErrNotFound", err)
	}
	if _, err := iss.RevokeRecorded(ctx, rec.ID, func(r token.Record) (clientv3.Op, error) { return mark("/t/again")(r) }); !errors.Is(err, token.ErrNotFound) || exists("/t/again") {
		t.Errorf("second revoke = %v (audit written: %v), want ErrNotFound and no audit", err, exists("/t/again"))
	}

	// A failing hook stops the change.
	boom := errors.New("boom")
	if _, _, err := iss.CreateRecorded(ctx, "web", "shop", time.Hour, func(token.Record) (clientv3.Op, error) { return clientv3.Op{}, boom }); !errors.Is(err, boom) {
		t.Errorf("CreateRecorded with failing hook = %v", err)
	}
	if recs, err := iss.List(ctx); err != nil || len(recs) != 0 {
		t.Errorf("tokens after failed create: %+v, %v", recs, err)
	}

	_, cred, err := iss.CreateCredential(ctx, token.CredentialSpec{Name: "ci", Role: token.RoleView},
		func(c token.Credential) (clientv3.Op, error) { return mark("/c/created/" + c.ID)(c) })
	if err != nil || !exists("/c/created/"+cred.ID) {
		t.Fatalf("CreateCredential: %v", err)
	}
	gone, err := iss.RevokeCredential(ctx, cred.ID, func(c token.Credential) (clientv3.Op, error) { return mark("/c/revoked/" + c.ID)(c) })
	if err != nil || gone.Name != "ci" || !exists("/c/revoked/"+cred.ID) {
		t.Errorf("RevokeCredential = %+v, %v", gone, err)
	}
	if _, err := iss.LookupCredential(ctx, cred.ID); !errors.Is(err, token.ErrNotFound) {
		t.Errorf("LookupCredential after revoke = %v, want ErrNotFound", err)
	}
}
