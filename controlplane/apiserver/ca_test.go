package apiserver_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/ca"
)

// newCAEnv is newEnv with the mesh CA behind /api/v1/ca.
func newCAEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	authority, err := ca.Load(context.Background(), e.store.Client(), ca.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Close()
	e.srv = httptest.NewTLSServer(apiserver.New(apiserver.Options{
		Store: e.store, Workloads: e.store, Tokens: e.tokens, Auth: e.tokens, CA: authority,
		TrustDomain: "weft.local", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	t.Cleanup(e.srv.Close)
	e.client = e.newClient(t, e.admin)
	return e
}

func TestCAStatusAndRotate(t *testing.T) {
	e := newCAEnv(t)
	ctx := context.Background()
	st, err := e.client.CAStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != "managed" || len(st.Roots) != 1 || !st.Roots[0].Signing || st.Rotation != nil {
		t.Fatalf("status: %+v", st)
	}
	if resp, _ := e.do(t, http.MethodGet, "/api/v1/ca", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /api/v1/ca without a credential: %d", resp.StatusCode)
	}
	for body, says := range map[string]string{
		`{"grace": "forever"}`:   `grace: "forever" is not a duration`,
		`{"propagation": "1ms"}`: "propagation: 1ms is outside [1s, 1h0m0s]",
		`{"grace": "1s"}`:        "grace: 1s is outside",
		`{"propagaton": "10s"}`:  "unknown field",
	} {
		resp, eb := e.do(t, http.MethodPost, "/api/v1/ca/rotate", "Bearer "+e.admin, strings.NewReader(body))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(eb.Error, says) {
			t.Errorf("rotate %s: %d %q, want 400 saying %q", body, resp.StatusCode, eb.Error, says)
		}
	}
	st, err = e.client.RotateCA(ctx, 10*time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Rotation; r == nil || r.Phase != "trust" || r.Propagation != "10s" || r.Grace != "1m0s" || len(st.Roots) != 2 {
		t.Fatalf("after rotate: %+v %+v", st, st.Rotation)
	}
	_, err = e.client.RotateCA(ctx, 0, 0)
	if apiErr, ok := err.(*client.APIError); !ok || apiErr.Status != http.StatusConflict || !strings.Contains(apiErr.Message, "already in progress") {
		t.Fatalf("a second rotation: %v, want 409 already in progress", err)
	}
}
