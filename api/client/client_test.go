package client

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/testpki"
)

// The client's use of the real API server is tested in controlplane/apiserver;
// these tests cover what only odd servers do.

func configFor(srv *httptest.Server) Config {
	return Config{
		Server: srv.URL,
		CACert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})),
		Token:  "s3cret",
	}
}

func TestSendsCredentialAndDecodesErrors(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			t.Errorf("Authorization = %q, want the config's token", r.Header.Get("Authorization"))
		}
		switch r.URL.Path {
		case "/api/v1/version":
			// A proxy in front of the API answers with its own page.
			http.Error(w, "<html>upstream down</html>", http.StatusBadGateway)
		case "/api/v1/apply":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error": "a.yaml: 1 problem; nothing applied",
				"details": [{"document": 2, "ref": "Service default/x", "field": "spec.ports", "line": 9, "detail": "is required"}]}`))
		}
	}))
	defer srv.Close()
	c, err := New(configFor(srv))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Version(context.Background())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadGateway ||
		apiErr.Message != "server answered 502 Bad Gateway: <html>upstream down</html>" {
		t.Errorf("non-JSON error: %#v", err)
	}
	_, err = c.Apply(context.Background(), []byte("x"), "a.yaml")
	if !errors.As(err, &apiErr) || len(apiErr.Details) != 1 {
		t.Fatalf("apply error: %#v", err)
	}
	const want = "a.yaml: 1 problem; nothing applied\n  line 9: Service default/x: spec.ports: is required"
	if err.Error() != want {
		t.Errorf("apply error renders as %q, want %q", err, want)
	}
}

func TestTrustsOnlyTheConfiguredCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("request reached a server the client should not trust")
	}))
	defer srv.Close()
	cfg := configFor(srv)
	cfg.CACert = string(testpki.NewCA(t, "some other CA").PEM())
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Version(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach the control plane at "+srv.URL+": tls: ") {
		t.Errorf("err = %v, want a TLS verification failure naming the server", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := Config{Server: "https://127.0.0.1:1", CACert: "not PEM", Token: "t"}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "caCert: no PEM certificate") {
		t.Errorf("New with a bad CA: %v", err)
	}
}
