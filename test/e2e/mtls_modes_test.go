package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestMTLSModesPermissive: with the Mesh PERMISSIVE, a plaintext client
// and a mesh client reach the same inbound port, for HTTP and for TCP; a
// Service override to STRICT then refuses plaintext, new connections and
// kept-alive ones alike, while the mesh client goes on.
func TestMTLSModesPermissive(t *testing.T) {
	cp := startMeshControl(t)
	cp.apply(t, `
apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  mtls: {mode: PERMISSIVE}
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog}
spec:
  ports: [{port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: db}
spec:
  ports: [{port: 5432, protocol: tcp}]
`)
	catalogIP := nextIP()
	app := startBackend(t, catalogIP, "catalog", nil)
	catalog := startMeshSidecar(t, cp, sidecarOpts{service: "catalog", app: app.addr, ip: catalogIP}).waitReady(t)
	dbIP := nextIP()
	db := startMeshSidecar(t, cp, sidecarOpts{service: "db", app: startEcho(t, dbIP), ip: dbIP}).waitReady(t)
	web := startMeshSidecar(t, cp, sidecarOpts{service: "web", upstreams: []string{"catalog", "db"}}).waitReady(t)
	waitEndpoints(t, web, "catalog", "db")

	meshGet := func() result { return doGet("http://" + web.upstreams["catalog"] + "/items") }
	plainGet := func() result { return doGet("http://" + catalog.inbound + "/items") }
	for what, get := range map[string]func() result{"mesh": meshGet, "plaintext": plainGet} {
		if r := get(); r.err != nil || r.code != 200 || r.backend != "catalog" {
			t.Fatalf("PERMISSIVE %s client: %d %v", what, r.code, r.err)
		}
	}
	echo := func(addr string) error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "ping"); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			return fmt.Errorf("echo %q: %v", buf, err)
		}
		return nil
	}
	if err := echo(web.upstreams["db"]); err != nil {
		t.Fatalf("PERMISSIVE tcp mesh client: %v", err)
	}
	if err := echo(db.inbound); err != nil {
		t.Fatalf("PERMISSIVE tcp plaintext client: %v", err)
	}

	// A plaintext connection kept alive across the switch.
	kept, err := net.DialTimeout("tcp", catalog.inbound, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	kr := bufio.NewReader(kept)
	keptGet := func() (int, error) {
		_ = kept.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(kept, "GET /kept HTTP/1.1\r\nHost: catalog\r\n\r\n"); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(kr, nil)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := keptGet(); err != nil || code != 200 {
		t.Fatalf("kept-alive plaintext connection before the switch: %d %v", code, err)
	}

	cp.apply(t, `
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog}
spec:
  ports: [{port: 8080, protocol: http}]
  mtls: {mode: STRICT}
`)
	eventually(t, 10*time.Second, "catalog refuses plaintext", func() error {
		if r := plainGet(); r.err == nil && r.code == 200 {
			return fmt.Errorf("a new plaintext connection was served")
		}
		return nil
	})
	hits := app.hits.Load()
	if r := plainGet(); r.err == nil && r.code == 200 {
		t.Fatalf("STRICT: a new plaintext connection was served")
	}
	if code, err := keptGet(); err == nil && code == 200 {
		t.Fatalf("STRICT: a plaintext connection opened before the switch was served")
	}
	if got := app.hits.Load(); got != hits {
		t.Fatalf("STRICT: %d plaintext requests reached the app", got-hits)
	}
	if r := meshGet(); r.err != nil || r.code != 200 {
		t.Fatalf("STRICT: mesh client: %d %v", r.code, r.err)
	}
	// The Mesh's PERMISSIVE still holds for db, which has no override.
	if err := echo(db.inbound); err != nil {
		t.Fatalf("db, still PERMISSIVE: %v", err)
	}
}
