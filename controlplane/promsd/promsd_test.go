package promsd

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftmesh/weft/api/meshv1"
)

type workloads []*meshv1.Workload

func (ws workloads) ListWorkloads(_ context.Context, namespace, service string) ([]*meshv1.Workload, error) {
	if namespace != "" || service != "" {
		return nil, errors.New("want every workload")
	}
	return ws, nil
}

type broken struct{}

func (broken) ListWorkloads(context.Context, string, string) ([]*meshv1.Workload, error) {
	return nil, errors.New("etcd is away")
}

var mesh = workloads{
	{Id: "web.shop@127.10.0.2:9080", Service: "web", Namespace: "shop", Version: "v2", AdminAddress: "127.10.0.2:15000"},
	{Id: "cart.shop@127.10.0.3:9080", Service: "cart", Namespace: "shop", Labels: map[string]string{"version": "v1"}, AdminAddress: "127.10.0.3:15000"},
	{Id: "old.shop@127.10.0.4:9080", Service: "old", Namespace: "shop"}, // no admin port: not scraped
}

func TestTargets(t *testing.T) {
	srv := httptest.NewServer(Handler(mesh))
	defer srv.Close()
	want := []Group{
		{Targets: []string{"127.10.0.3:15000"}, Labels: map[string]string{"job": JobProxies, "workload": "cart.shop@127.10.0.3:9080", "service": "cart", "namespace": "shop", "version": "v1"}},
		{Targets: []string{"127.10.0.2:15000"}, Labels: map[string]string{"job": JobProxies, "workload": "web.shop@127.10.0.2:9080", "service": "web", "namespace": "shop", "version": "v2"}},
		{Targets: []string{strings.TrimPrefix(srv.URL, "http://")}, Labels: map[string]string{"job": JobControlPlane}},
	}
	res, err := http.Get(srv.URL + Path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got []Group
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}

	down := httptest.NewServer(Handler(broken{}))
	defer down.Close()
	res, err = http.Get(down.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("store failure: status %d, want 503", res.StatusCode)
	}
}

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weft.json")
	if err := WriteFile(context.Background(), mesh, "", path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []Group
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v:\n%s", err, b)
	}
	if len(got) != 2 {
		t.Fatalf("%d groups, want the 2 proxies with an admin port:\n%s", len(got), b)
	}
	// A failure keeps the last good file.
	if err := WriteFile(context.Background(), broken{}, "", path); err == nil {
		t.Fatal("no error from a failing store")
	}
	if after, _ := os.ReadFile(path); string(after) != string(b) {
		t.Errorf("file changed after a failed write")
	}
}
