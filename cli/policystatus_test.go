package cli

import (
	"context"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/token"
)

// fakePolicyStatus stands in for the xDS server: proxy counts and NACKs by
// "namespace/name".
type fakePolicyStatus map[string]struct {
	want, applied int
	nacks         []string
}

func (f fakePolicyStatus) PolicyStatus(_, namespace, name, _ string, _ int64) (int, int, []string) {
	r := f[namespace+"/"+name]
	return r.want, r.applied, r.nacks
}

// startPolicyControlPlane serves the real API with source as its policy
// status source and returns the path of a client config.
func startPolicyControlPlane(t *testing.T, source apiserver.PolicyStatusSource) string {
	t.Helper()
	ctx := context.Background()
	st := storetest.New(t)
	issuer, err := token.NewIssuer(ctx, st.Client(), token.WithClock(func() time.Time { return issuedAt }))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := issuer.CreateAdmin(ctx, "cli-test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(apiserver.New(apiserver.Options{
		Store: st, Workloads: st, Tokens: issuer, Auth: issuer, PolicyStatus: source,
		TrustDomain: "weft.local", Version: "v0.9.0-server",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "config")
	err = client.WriteConfig(path, client.Config{
		Server: srv.URL,
		CACert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})),
		Token:  admin,
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGetAccessPolicies(t *testing.T) {
	cfg := startPolicyControlPlane(t, fakePolicyStatus{
		"shop/deny-writes": {want: 2, applied: 2},
		"shop/readers":     {want: 2, applied: 1},
		"shop/orphan":      {want: 2, applied: 0, nacks: []string{`listener "inbound": filter_chains[0]...: not supported`}},
	})
	if code := RunWith([]string{"--config", cfg, "apply", "-f", "testdata/accesspolicies/policies.yaml"}, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("apply: exit %d", code)
	}
	for _, c := range []cliCase{
		{golden: "get-accesspolicies", args: []string{"get", "accesspolicies", "-n", "shop"}},
		{golden: "get-accesspolicy-yaml", args: []string{"get", "ap", "readers", "-n", "shop", "-o", "yaml"}},
	} {
		t.Run(c.golden, func(t *testing.T) {
			c.args = append([]string{"--config", cfg}, c.args...)
			checkGolden(t, c.golden, run(t, c))
		})
	}
}
