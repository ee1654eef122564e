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

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/token"
)

// fakeRouteStatus stands in for the xDS server: proxy counts and NACKs by
// "namespace/service".
type fakeRouteStatus map[string]struct {
	want, applied int
	nacks         []string
}

func (f fakeRouteStatus) RouteStatus(namespace, service string) (int, int, []string) {
	r := f[namespace+"/"+service]
	return r.want, r.applied, r.nacks
}

// startRouteControlPlane serves the real API with source as its route
// status source (none when nil) and the given registered workloads, and returns the path of a client config.
func startRouteControlPlane(t *testing.T, source apiserver.RouteStatusSource, workloads ...*meshv1.Workload) string {
	t.Helper()
	ctx := context.Background()
	st := storetest.New(t)
	for _, w := range workloads {
		if _, err := st.PutWorkload(ctx, w, clientv3.NoLease); err != nil {
			t.Fatal(err)
		}
	}
	issuer, err := token.NewIssuer(ctx, st.Client(), token.WithClock(func() time.Time { return issuedAt }))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := issuer.CreateAdmin(ctx, "cli-test")
	if err != nil {
		t.Fatal(err)
	}
	opts := apiserver.Options{
		Store: st, Workloads: st, Tokens: issuer, Auth: issuer,
		TrustDomain: "weft.local", Version: "v0.9.0-server",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if source != nil {
		opts.RouteStatus = source
	}
	srv := httptest.NewTLSServer(apiserver.New(opts))
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

func TestGetRoutes(t *testing.T) {
	cfg := startRouteControlPlane(t, fakeRouteStatus{
		"shop/payments": {want: 3, applied: 3},
		"shop/catalog": {want: 3, applied: 1, nacks: []string{
			`route "outbound|catalog.shop": virtual_hosts[0].routes[0].route.hash_policy: is not supported by this proxy`,
			"another"}},
		"default/search": {want: 2, applied: 1},
	})
	if code := RunWith([]string{"--config", cfg, "apply", "-f", "testdata/routes/routes.yaml"}, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("apply: exit %d", code)
	}
	for _, c := range []cliCase{
		{golden: "get-routes", args: []string{"get", "routes", "-A"}},
		{golden: "get-routes-namespace", args: []string{"get", "routes", "-n", "shop"}},
		{golden: "get-route-yaml", args: []string{"get", "route", "catalog", "-n", "shop", "-o", "yaml"}},
		{golden: "get-route-table", args: []string{"get", "route", "payments", "-n", "shop"}},
		{golden: "get-routes-json", args: []string{"get", "routes", "-n", "shop", "-o", "json"}},
		{golden: "get-routes-yaml", args: []string{"get", "routes", "-o", "yaml"}},
	} {
		t.Run(c.golden, func(t *testing.T) {
			c.args = append([]string{"--config", cfg}, c.args...)
			checkGolden(t, c.golden, run(t, c))
		})
	}
}

// TestGetRoutesWithoutProxyStatus covers a control plane that does not
// track proxies: Routes show whether they are accepted only.
func TestGetRoutesWithoutProxyStatus(t *testing.T) {
	cfg := startRouteControlPlane(t, nil)
	if code := RunWith([]string{"--config", cfg, "apply", "-f", "testdata/routes/routes.yaml"}, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("apply: exit %d", code)
	}
	c := cliCase{golden: "get-routes-no-proxy-status", args: []string{"--config", cfg, "get", "routes", "-A"}}
	checkGolden(t, c.golden, run(t, c))
}

func TestRouteStatusText(t *testing.T) {
	n := func(i int) *int { return &i }
	for _, tc := range []struct {
		st   *client.RouteStatus
		want string
	}{
		{nil, "-"},
		{&client.RouteStatus{Phase: client.RouteApplied, Proxies: n(3), Applied: n(3)}, "applied 3/3"},
		{&client.RouteStatus{Phase: client.RoutePending, Proxies: n(3), Applied: n(1)}, "pending 1/3"},
		{&client.RouteStatus{Phase: client.RouteRejected, Errors: []string{"a\nb", "c"}}, "rejected by 2: a b"},
		{&client.RouteStatus{Phase: client.RouteNoProxies}, "accepted, no proxies"},
		{&client.RouteStatus{Phase: client.RouteUnknown}, "accepted"},
		{&client.RouteStatus{Phase: client.RouteNotAccepted, Reason: "why"}, "not accepted: why"},
	} {
		if got := routeStatusText(tc.st); got != tc.want {
			t.Errorf("routeStatusText(%+v) = %q, want %q", tc.st, got, tc.want)
		}
	}
}
