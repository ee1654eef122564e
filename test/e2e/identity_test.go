package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTokenBoundToService: a join token for one service cannot obtain
// another service's identity; the proxy says so and exits.
func TestTokenBoundToService(t *testing.T) {
	cp := startControl(t, controlOpts{})
	s := startSidecar(t, cp, sidecarOpts{service: "payments", token: cp.token(t, "frontend")})
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatal("a proxy with another service's token kept running")
	}
	out := s.output()
	if s.err == nil || !strings.Contains(out, "refused") || !strings.Contains(out, "payments") {
		t.Fatalf("want a refusal naming payments, got exit %v:\n%s", s.err, out)
	}
}

type certInfo struct {
	SVID struct {
		SpiffeID string    `json:"spiffeID"`
		Serial   string    `json:"serial"`
		NotAfter time.Time `json:"notAfter"`
	} `json:"svid"`
}

func certsOf(t testing.TB, s *sidecar) certInfo {
	t.Helper()
	var c certInfo
	if err := json.Unmarshal([]byte(s.adminGet(t, "/certs")), &c); err != nil {
		t.Fatalf("/certs: %v", err)
	}
	return c
}

// TestSVIDRotationUnderTraffic: with a one-minute certificate TTL every proxy
// rotates at about half-life while traffic flows, no request fails, and new
// connections after the rotation use the new certificates.
func TestSVIDRotationUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("takes over half a minute: the certificate TTL is one minute")
	}
	f := newMeshWith(t, "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: {name: default}\nspec:\n  certificateTTL: 1m\n")
	proxies := []*sidecar{f.front, f.catV1, f.catV2}
	first := map[*sidecar]certInfo{}
	for _, s := range proxies {
		c := certsOf(t, s)
		if !strings.HasSuffix(c.SVID.SpiffeID, "/ns/default/sa/"+s.service) {
			t.Fatalf("SVID of %s is %q", s.service, c.SVID.SpiffeID)
		}
		if life := time.Until(c.SVID.NotAfter); life > 2*time.Minute {
			t.Fatalf("SVID of %s lives %s, want about 1m from Mesh.spec.certificateTTL", s.service, life)
		}
		first[s] = c
	}
	l := startLoad("http://"+f.catalogPort+"/items", 20*time.Millisecond)
	for _, s := range proxies {
		eventually(t, 60*time.Second, s.service+" rotates its SVID", func() error {
			if c := certsOf(t, s); c.SVID.Serial == first[s].SVID.Serial {
				return errorf("still serial %s", c.SVID.Serial)
			}
			return nil
		})
	}
	// New connections after the rotation: a fresh client proxy reaches both versions.
	client := startSidecar(t, f.cp, sidecarOpts{service: "client", upstreams: []string{"catalog"}}).waitReady(t)
	waitEndpoints(t, client, "catalog")
	for range 10 {
		if code, body, _ := get(t, http.DefaultClient, "http://"+client.upstreams["catalog"]+"/"); code != 200 {
			t.Fatalf("after rotation: %d %s", code, body)
		}
	}
	time.Sleep(2 * time.Second)
	ok, failed, errs := l.finish()
	t.Logf("%d ok, %d failed during rotation", ok, failed)
	if failed > 0 || ok < 500 {
		t.Fatalf("%d requests failed (ok %d) during rotation: %v", failed, ok, errs)
	}
}
