package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/audit"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/token"
)

// env is an API server over TLS on a real embedded etcd and token issuer,
// and a client of it with a real admin credential.
type env struct {
	srv    *httptest.Server
	store  *store.Store
	tokens *token.Issuer
	admin  string // the admin credential
	client *client.Client
	logs   *syncBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{store: storetest.New(t), logs: &syncBuffer{}}
	var err error
	if e.tokens, err = token.NewIssuer(ctx, e.store.Client()); err != nil {
		t.Fatal(err)
	}
	if e.admin, err = e.tokens.CreateAdmin(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewTLSServer(apiserver.New(apiserver.Options{
		Store: e.store, Workloads: e.store, Tokens: e.tokens, Auth: e.tokens,
		Audit:       audit.New(e.store.Client(), audit.Options{Log: slog.New(slog.NewTextHandler(e.logs, nil))}),
		TrustDomain: "weft.local", Version: "v1.2.3",
		Log: slog.New(slog.NewTextHandler(e.logs, nil)),
	}))
	t.Cleanup(e.srv.Close)
	e.client = e.newClient(t, e.admin)
	return e
}

func (e *env) newClient(t *testing.T, secret string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{
		Server: e.srv.URL,
		CACert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw})),
		Token:  secret,
	})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	return c
}

// do sends a raw request and decodes the JSON error body, if any.
func (e *env) do(t *testing.T, method, path, auth string, body io.Reader) (*http.Response, client.ErrorResponse) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var errBody client.ErrorResponse
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
		}
		if err := json.Unmarshal(data, &errBody); err != nil || errBody.Error == "" {
			t.Errorf("%s %s: error body %q is not {\"error\": ...}", method, path, data)
		}
	}
	return resp, errBody
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no credential", "", http.StatusUnauthorized},
		{"wrong credential", "Bearer nope", http.StatusUnauthorized},
		{"revoked-looking credential", "Bearer weftadm_00000000000000000000000000000000_AAAA", http.StatusUnauthorized},
		{"not a bearer", "Basic " + e.admin, http.StatusUnauthorized},
		{"admin", "Bearer " + e.admin, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := e.do(t, http.MethodGet, "/api/v1/version", tc.auth, nil)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want Bearer", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// Unknown paths are no way around authentication.
	if resp, _ := e.do(t, http.MethodGet, "/nowhere", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated unknown path: status %d, want 401", resp.StatusCode)
	}
	// The client surfaces the server's message.
	_, err := e.newClient(t, "wrong").Version(context.Background())
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || apiErr.Message != "invalid API credential" {
		t.Errorf("client with a wrong credential: err = %v, want a 401 *APIError \"invalid API credential\"", err)
	}
}

func TestRoutingErrors(t *testing.T) {
	e := newEnv(t)
	auth := "Bearer " + e.admin
	resp, body := e.do(t, http.MethodGet, "/api/v2/things", auth, nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body.Error, "/api/v2/things") {
		t.Errorf("unknown path: %d %q, want 404 naming the path", resp.StatusCode, body.Error)
	}
	resp, body = e.do(t, http.MethodPut, "/api/v1/resources?kind=Service", auth, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, DELETE" {
		t.Errorf("PUT resources: %d Allow=%q %q, want 405 with Allow: GET, DELETE",
			resp.StatusCode, resp.Header.Get("Allow"), body.Error)
	}
}

func TestVersion(t *testing.T) {
	e := newEnv(t)
	v, err := e.client.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != "v1.2.3" || v.TrustDomain != "weft.local" {
		t.Errorf("Version = %+v, want v1.2.3 and weft.local", v)
	}
}

func TestCallsAreLogged(t *testing.T) {
	e := newEnv(t)
	e.do(t, http.MethodGet, "/api/v1/version", "", nil)
	if _, err := e.client.Version(context.Background()); err != nil {
		t.Fatal(err)
	}
	id, err := e.tokens.VerifyAdmin(context.Background(), e.admin)
	if err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	for _, want := range []string{
		"who=anonymous method=GET path=/api/v1/version status=401",
		"who=" + id + " method=GET path=/api/v1/version status=200",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}
