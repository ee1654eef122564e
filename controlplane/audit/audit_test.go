package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/audit"
	"github.com/weftmesh/weft/controlplane/store/storetest"
)

func entry(name string) client.AuditEntry {
	return client.AuditEntry{
		Who:    client.AuditActor{CredentialID: "0123456789abcdef", Name: "alice", Role: "admin"},
		Action: client.AuditApply,
		Changes: []client.AuditItem{{
			Kind: "Service", Namespace: "default", Name: name, Result: "created",
			Diff: "--- /dev/null\n+++ Service default/" + name + " (after)\n@@ -0,0 +1 @@\n+kind: Service\n",
		}},
	}
}

func TestWriteListPrune(t *testing.T) {
	ctx := context.Background()
	kv := storetest.New(t).Client()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	l := audit.New(kv, audit.Options{
		MaxEntries: 3, MaxAge: time.Hour,
		Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		Now: func() time.Time { return now },
	})
	for i := range 5 {
		now = now.Add(time.Minute)
		if err := l.Write(ctx, entry(fmt.Sprint("svc", i))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.List(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range got {
		names = append(names, e.Changes[0].Name)
	}
	if want := "svc4 svc3 svc2"; strings.Join(names, " ") != want {
		t.Errorf("entries after pruning to 3: %v, want %s (newest first)", names, want)
	}
	if e := got[0]; e.Who.Name != "alice" || !e.Time.Equal(now) || e.ID == "" || !strings.Contains(e.Changes[0].Diff, "+kind: Service") {
		t.Errorf("newest entry = %+v", e)
	}
	if !strings.Contains(logs.String(), `"msg":"audit"`) || !strings.Contains(logs.String(), `"credential_name":"alice"`) ||
		!strings.Contains(logs.String(), `"name":"svc4"`) {
		t.Errorf("structured log lacks the entry:\n%s", logs.String())
	}

	// An hour after svc4, everything older than it is pruned by age.
	now = now.Add(time.Hour)
	if err := l.Write(ctx, entry("late")); err != nil {
		t.Fatal(err)
	}
	got, err = l.List(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Changes[0].Name != "late" || got[1].Changes[0].Name != "svc4" {
		t.Errorf("after the age cut: %+v", got)
	}
	if one, err := l.List(ctx, 1); err != nil || len(one) != 1 {
		t.Errorf("List(1) = %d entries, %v", len(one), err)
	}
}

func TestDiffBounded(t *testing.T) {
	ctx := context.Background()
	kv := storetest.New(t).Client()
	l := audit.New(kv, audit.Options{Log: slog.New(slog.DiscardHandler)})
	big := strings.Repeat("+a line of yaml that goes on\n", 4000)
	e := entry("big")
	e.Changes = append(e.Changes, client.AuditItem{Kind: "Service", Name: "x", Diff: big})
	for range 12 {
		e.Changes = append(e.Changes, client.AuditItem{Kind: "Service", Name: "y", Diff: big})
	}
	if err := l.Write(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := l.List(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := got[0].Changes
	if d := c[1].Diff; len(d) > 33<<10 || !strings.Contains(d, "(diff truncated:") {
		t.Errorf("big diff kept %d bytes, ends %q", len(d), d[len(d)-40:])
	}
	if d := c[len(c)-1].Diff; !strings.HasPrefix(d, "(diff omitted") {
		t.Errorf("last diff = %.60q, want it omitted", d)
	}
}

func TestDiff(t *testing.T) {
	before := []byte(`{"apiVersion":"weft.dev/v1alpha1","kind":"Service","metadata":{"name":"web","namespace":"default"},"spec":{"ports":[{"port":8080}]}}`)
	after := []byte(`{"apiVersion":"weft.dev/v1alpha1","kind":"Service","metadata":{"name":"web","namespace":"default"},"spec":{"ports":[{"port":9090}]}}`)
	d, err := audit.Diff("Service default/web", before, after)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--- Service default/web (before)\n", "+++ Service default/web (after)\n", "-  - port: 8080\n", "+  - port: 9090\n"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	created, err := audit.Diff("Service default/web", nil, after)
	if err != nil || !strings.HasPrefix(created, "--- /dev/null\n+++ Service default/web (after)\n@@ -0,0 +1,") {
		t.Errorf("created diff: %v\n%s", err, created)
	}
	deleted, err := audit.DiffValues("JoinToken shop/x", map[string]string{"service": "web"}, nil)
	if err != nil || !strings.Contains(deleted, "-service: web\n") || !strings.Contains(deleted, "+++ /dev/null") {
		t.Errorf("deleted diff: %v\n%s", err, deleted)
	}
}
