package token_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/token"
)

var ctx = context.Background()

func newIssuer(t testing.TB, kv *clientv3.Client, opts ...token.Option) *token.Issuer {
	t.Helper()
	i, err := token.NewIssuer(ctx, kv, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func create(t testing.TB, i *token.Issuer, service, namespace string, ttl time.Duration) (string, token.Record) {
	t.Helper()
	tok, rec, err := i.Create(ctx, service, namespace, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok, rec
}

// at returns a clock that reads now shifted by d.
func at(d time.Duration) token.Option {
	return token.WithClock(func() time.Time { return time.Now().Add(d) })
}

func TestCreateVerify(t *testing.T) {
	kv := storetest.New(t).Client()
	iss := newIssuer(t, kv)
	before := time.Now().Truncate(time.Second)
	tok, rec := create(t, iss, "payments", "default", time.Hour)

	if !strings.HasPrefix(tok, "weft1.") || strings.Count(tok, ".") != 2 {
		t.Errorf("token %q is not weft1.<claims>.<signature>", tok)
	}
	if rec.Service != "payments" || rec.Namespace != "default" || len(rec.ID) != 32 ||
		rec.IssuedAt.Before(before) || rec.ExpiresAt.Sub(rec.IssuedAt) != time.Hour {
		t.Errorf("record = %+v", rec)
	}
	claims, err := iss.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if want := token.Claims(rec); !claims.IssuedAt.Equal(want.IssuedAt) || !claims.ExpiresAt.Equal(want.ExpiresAt) ||
		claims.ID != want.ID || claims.Service != want.Service || claims.Namespace != want.Namespace {
		t.Errorf("claims = %+v, want %+v", claims, want)
	}

	// The record is stored, without the token, on a lease a little longer than the token.
	resp, err := kv.Get(ctx, store.PrefixTokens+rec.ID)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("record: %v %v", resp, err)
	}
	if sig := tok[strings.LastIndex(tok, ".")+1:]; strings.Contains(string(resp.Kvs[0].Value), sig) {
		t.Error("the store holds the token's signature")
	}
	ttl, err := kv.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil || ttl.TTL < int64(time.Hour/time.Second) || ttl.TTL > int64((time.Hour+10*time.Minute)/time.Second) {
		t.Errorf("record lease TTL = %v, %v; want a little over an hour", ttl, err)
	}

	list, err := iss.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != rec.ID {
		t.Errorf("List = %+v, %v", list, err)
	}
}

func TestCreateValidates(t *testing.T) {
	iss := newIssuer(t, storetest.New(t).Client())
	tests := []struct {
		service, namespace string
		ttl                time.Duration
		want               string
	}{
		{"Payments", "default", time.Hour, `service "Payments" is not a DNS label`},
		{"", "default", time.Hour, `service "" is not a DNS label`},
		{"pay_ments", "default", time.Hour, "is not a DNS label"},
		{strings.Repeat("a", 64), "default", time.Hour, "is not a DNS label"},
		{"-payments", "default", time.Hour, "is not a DNS label"},
		{"payments", "de/fault", time.Hour, `namespace "de/fault" is not a DNS label`},
		{"payments", "default", 30 * time.Second, "lifetime 30s is outside [1m0s, 8760h0m0s]"},
		{"payments", "default", 2 * 365 * 24 * time.Hour, "is outside"},
	}
	for _, tc := range tests {
		if _, _, err := iss.Create(ctx, tc.service, tc.namespace, tc.ttl); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Create(%q, %q, %v) = %v, want %q", tc.service, tc.namespace, tc.ttl, err, tc.want)
		}
	}
	if list, _ := iss.List(ctx); len(list) != 0 {
		t.Errorf("refused tokens were recorded: %+v", list)
	}
}

func TestVerifyRejects(t *testing.T) {
	kv := storetest.New(t).Client()
	iss := newIssuer(t, kv)
	tok, _ := create(t, iss, "frontend", "default", time.Hour)
	parts := strings.Split(tok, ".")

	// The same claims naming another service, under the original signature.
	var claims map[string]any
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["svc"] = "payments"
	forged, _ := json.Marshal(claims)
	tamperedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]

	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	tamperedSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)

	// A token from another control plane with its own signing key.
	foreign, _ := create(t, newIssuer(t, storetest.New(t).Client()), "frontend", "default", time.Hour)

	expired, _ := create(t, newIssuer(t, kv, at(-2*time.Hour)), "frontend", "default", time.Hour)
	future, _ := create(t, newIssuer(t, kv, at(time.Hour)), "frontend", "default", time.Hour)
	revoked, rec := create(t, iss, "frontend", "default", time.Hour)
	if err := iss.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		token string
		want  error
		says  string
	}{
		{"empty", "", token.ErrMalformed, `does not start with "weft1."`},
		{"other format", "Bearer abc", token.ErrMalformed, "does not start with"},
		{"two parts", parts[0] + "." + parts[1], token.ErrMalformed, "want weft1.<claims>.<signature>"},
		{"four parts", tok + ".x", token.ErrMalformed, "want weft1.<claims>.<signature>"},
		{"signature not base64", parts[0] + "." + parts[1] + ".!!!", token.ErrMalformed, "signature is not"},
		{"oversized", "weft1." + strings.Repeat("a", 4096), token.ErrMalformed, "longer than"},
		{"tampered payload", tamperedPayload, token.ErrBadSignature, "signature does not verify"},
		{"tampered signature", tamperedSig, token.ErrBadSignature, "signature does not verify"},
		{"another issuer's key", foreign, token.ErrBadSignature, "another control plane"},
		{"expired", expired, token.ErrExpired, "for default/frontend expired at"},
		{"issued in the future", future, token.ErrInvalid, "in the future"},
		{"revoked", revoked, token.ErrRevoked, "unknown or revoked: token " + rec.ID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := iss.Verify(ctx, tc.token)
			if !errors.Is(err, tc.want) || !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "token: ") || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if p := strings.Split(tc.token, "."); len(p) > 1 && strings.Contains(err.Error(), p[len(p)-1]) {
				t.Errorf("error %q repeats the token", err)
			}
		})
	}
}

func TestVerifyAllowsClockSkew(t *testing.T) {
	kv := storetest.New(t).Client()
	tok, _ := create(t, newIssuer(t, kv), "frontend", "default", time.Minute)
	if _, err := newIssuer(t, kv, at(time.Minute+10*time.Second)).Verify(ctx, tok); err != nil {
		t.Errorf("10s past expiry: %v", err)
	}
	if _, err := newIssuer(t, kv, at(2*time.Minute)).Verify(ctx, tok); !errors.Is(err, token.ErrExpired) {
		t.Errorf("a minute past expiry: %v, want ErrExpired", err)
	}
}

func TestRevoke(t *testing.T) {
	iss := newIssuer(t, storetest.New(t).Client())
	keep, _ := create(t, iss, "frontend", "default", time.Hour)
	_, rec := create(t, iss, "payments", "default", time.Hour)
	if err := iss.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if err := iss.Revoke(ctx, rec.ID); !errors.Is(err, token.ErrNotFound) {
		t.Errorf("second Revoke = %v, want ErrNotFound", err)
	}
	if err := iss.Revoke(ctx, "../admin/x"); err == nil || errors.Is(err, token.ErrNotFound) {
		t.Errorf("Revoke of a malformed ID = %v", err)
	}
	if _, err := iss.Verify(ctx, keep); err != nil {
		t.Errorf("revoking one token broke another: %v", err)
	}
	if list, err := iss.List(ctx); err != nil || len(list) != 1 || list[0].Service != "frontend" {
		t.Errorf("List after Revoke = %+v, %v", list, err)
	}
}

func TestIssuersShareOneKey(t *testing.T) {
	kv := storetest.New(t).Client()
	issuers := make([]*token.Issuer, 4)
	var wg sync.WaitGroup
	for n := range issuers {
		wg.Go(func() {
			i, err := token.NewIssuer(ctx, kv)
			if err != nil {
				t.Error(err)
			}
			issuers[n] = i
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	tok, _ := create(t, issuers[0], "frontend", "default", time.Hour)
	for n, i := range issuers {
		if _, err := i.Verify(ctx, tok); err != nil {
			t.Errorf("issuer %d: %v", n, err)
		}
	}
}
