package apiserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/internal/testpki"
)

// certPair is a certificate for host and its key, PEM.
func certPair(t *testing.T, host string) (certPEM, keyPEM string) {
	t.Helper()
	return testpki.EncodePEM(t, testpki.NewCA(t, "gateway-ca").Issue(t, spiffe.ID{}, testpki.Options{DNSNames: []string{host}}))
}

// gatewayDoc is a Gateway with one HTTPS listener and a certificate per host.
func gatewayDoc(t *testing.T, name string, certs ...v1alpha1.GatewayCertificate) []byte {
	t.Helper()
	var hosts []string
	for _, c := range certs {
		hosts = append(hosts, c.Hosts...)
	}
	obj := v1alpha1.Object{
		APIVersion: "weft.dev/v1alpha1", Kind: "Gateway",
		Metadata: v1alpha1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: &v1alpha1.GatewaySpec{Service: "ingress", Listeners: []v1alpha1.GatewayListener{{
			Name: "https", Port: 8443, Protocol: v1alpha1.GatewayHTTPS, Hosts: hosts,
			TLS: &v1alpha1.GatewayTLS{Certificates: certs},
		}}},
	}
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func certsOf(o *v1alpha1.Object) []v1alpha1.GatewayCertificate {
	return o.Spec.(*v1alpha1.GatewaySpec).Listeners[0].TLS.Certificates
}

// TestGatewayKeysRedacted: no read of the API returns a Gateway's private
// key; what a read returns can be applied back as it is, and keeps the keys.
func TestGatewayKeysRedacted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	shopCert, shopKey := certPair(t, "shop.example.test")
	apiCert, apiKey := certPair(t, "api.example.test")
	shop := v1alpha1.GatewayCertificate{Hosts: []string{"shop.example.test"}, CertificatePEM: shopCert, PrivateKeyPEM: shopKey}
	api := v1alpha1.GatewayCertificate{Hosts: []string{"api.example.test"}, CertificatePEM: apiCert, PrivateKeyPEM: apiKey}
	if _, err := e.client.Apply(ctx, gatewayDoc(t, "public", shop, api), "gw.yaml"); err != nil {
		t.Fatalf("apply: %v", err)
	}

	// Get and list: markers in place of the keys, certificates untouched.
	got, err := e.client.Get(ctx, "Gateway", "default", "public")
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range certsOf(got) {
		if !strings.HasPrefix(c.PrivateKeyPEM, "<redacted: 1 private key, sha256:") || !v1alpha1.IsRedactedKey(c.PrivateKeyPEM) {
			t.Errorf("certificate %d: privateKeyPEM %q, want the marker", i, c.PrivateKeyPEM)
		}
		if !strings.Contains(c.CertificatePEM, "BEGIN CERTIFICATE") {
			t.Errorf("certificate %d: the certificate itself was redacted", i)
		}
	}
	if a, b := certsOf(got)[0].PrivateKeyPEM, certsOf(got)[1].PrivateKeyPEM; a == b {
		t.Errorf("two different keys show the same marker %q", a)
	}
	for _, path := range []string{
		"/api/v1/resources?kind=Gateway&namespace=default&name=public",
		"/api/v1/resources?kind=Gateway&namespace=default",
		"/api/v1/resources?kind=Gateway",
		"/api/v1/audit",
	} {
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.admin)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if strings.Contains(string(body), "PRIVATE KEY") || strings.Contains(string(body), pemBody(shopKey)) {
			t.Errorf("GET %s returns a private key:\n%.400s", path, body)
		}
		if !strings.Contains(string(body), "redacted") {
			t.Errorf("GET %s shows no marker:\n%.400s", path, body)
		}
	}

	// What was read, applied back as it is: unchanged, keys kept.
	asRead, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.client.Apply(ctx, asRead, "from-get.json")
	if err != nil {
		t.Fatalf("apply what get returned: %v", err)
	}
	if res[0].Action != "unchanged" {
		t.Errorf("applying what get returned: %s, want unchanged", res[0].Action)
	}
	stored := storedCerts(t, e)
	if stored[0].PrivateKeyPEM != shopKey || stored[1].PrivateKeyPEM != apiKey {
		t.Fatal("the stored keys changed")
	}

	// Edited: the certificates swapped places and a host added; each
	// marker still finds its own key, wherever it moved.
	oldMarker := certsOf(got)[0].PrivateKeyPEM
	edited := append([]v1alpha1.GatewayCertificate(nil), certsOf(got)...)
	edited[0], edited[1] = edited[1], edited[0]
	if _, err := e.client.Apply(ctx, gatewayDoc(t, "public", edited...), "edited.yaml"); err != nil {
		t.Fatalf("apply edited: %v", err)
	}
	stored = storedCerts(t, e)
	if stored[0].PrivateKeyPEM != apiKey || stored[1].PrivateKeyPEM != shopKey {
		t.Fatal("keys did not follow their certificates")
	}

	// A new key replaces the stored one (rotation); its old marker is then
	// refused, naming the field.
	shopCert2, shopKey2 := certPair(t, "shop.example.test")
	if _, err := e.client.Apply(ctx, gatewayDoc(t, "public",
		v1alpha1.GatewayCertificate{Hosts: shop.Hosts, CertificatePEM: shopCert2, PrivateKeyPEM: shopKey2},
		v1alpha1.GatewayCertificate{Hosts: api.Hosts, CertificatePEM: apiCert, PrivateKeyPEM: edited[0].PrivateKeyPEM},
	), "rotate.yaml"); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if stored = storedCerts(t, e); stored[0].PrivateKeyPEM != shopKey2 || stored[1].PrivateKeyPEM != apiKey {
		t.Fatal("rotation did not store the new key, or lost the kept one")
	}
	_, err = e.client.Apply(ctx, gatewayDoc(t, "public",
		v1alpha1.GatewayCertificate{Hosts: shop.Hosts, CertificatePEM: shopCert, PrivateKeyPEM: oldMarker}), "stale.yaml")
	apiErr := apiError(t, err, http.StatusBadRequest)
	if msg := apiErr.Error(); !strings.Contains(msg, "spec.listeners[0].tls.certificates[0].privateKeyPEM") ||
		!strings.Contains(msg, "no longer holds") || !strings.Contains(msg, "put the PEM private key here") {
		t.Errorf("stale marker: %s", msg)
	}

	// A marker kept with a certificate that is not its key's: the pair is
	// checked with the real key.
	_, err = e.client.Apply(ctx, gatewayDoc(t, "public",
		v1alpha1.GatewayCertificate{Hosts: shop.Hosts, CertificatePEM: shopCert, PrivateKeyPEM: v1alpha1.RedactKey(shopKey2)}), "mismatch.yaml")
	if msg := apiError(t, err, http.StatusBadRequest).Error(); !strings.Contains(msg, "not a usable pair") {
		t.Errorf("mismatched pair: %s", msg)
	}

	// A marker for a Gateway that does not exist.
	_, err = e.client.Apply(ctx, gatewayDoc(t, "other",
		v1alpha1.GatewayCertificate{Hosts: shop.Hosts, CertificatePEM: shopCert2, PrivateKeyPEM: v1alpha1.RedactKey(shopKey2)}), "new.yaml")
	if msg := apiError(t, err, http.StatusBadRequest).Error(); !strings.Contains(msg, "Gateway default/other is not stored yet") {
		t.Errorf("marker for a new Gateway: %s", msg)
	}
	if stored = storedCerts(t, e); stored[0].PrivateKeyPEM != shopKey2 {
		t.Fatal("a refused apply changed the stored key")
	}

	// The audit log saw every change, and no key.
	entries, err := e.client.Audit(ctx, 50)
	if err != nil {
		t.Fatal(err)
	}
	diffs := ""
	for _, en := range entries {
		for _, c := range en.Changes {
			diffs += c.Diff
		}
	}
	if strings.Contains(diffs, "PRIVATE KEY") || !strings.Contains(diffs, "<redacted: 1 private key, sha256:") {
		t.Errorf("audit diffs:\n%s", diffs)
	}
}

func storedCerts(t *testing.T, e *env) []v1alpha1.GatewayCertificate {
	t.Helper()
	o, err := e.store.Get(context.Background(), "Gateway", "default", "public")
	if err != nil {
		t.Fatal(err)
	}
	return certsOf(o)
}

// pemBody is a line from the middle of a PEM block: key material itself.
func pemBody(p string) string {
	lines := strings.Split(strings.TrimSpace(p), "\n")
	return lines[len(lines)/2]
}

// TestRequestAuthPrivateJWKRedacted: a JWKS pasted with its private members
// is read back as the public set, which applies back as it is.
func TestRequestAuthPrivateJWKRedacted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	pub, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	priv, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	jwks := fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":%q,"y":%q,"d":%q}]}`, b64(pub[1:33]), b64(pub[33:]), b64(priv))
	doc := fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: payments}
spec:
  ports: [{port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: RequestAuth
metadata: {name: payments}
spec:
  issuers:
  - issuer: https://issuer.example.test
    jwks: '%s'
`, jwks)
	if _, err := e.client.Apply(ctx, []byte(doc), "ra.yaml"); err != nil {
		t.Fatalf("apply: %v", err)
	}
	got, err := e.client.Get(ctx, "RequestAuth", "default", "payments")
	if err != nil {
		t.Fatal(err)
	}
	read := got.Spec.(*v1alpha1.RequestAuthSpec).Issuers[0].JWKS
	if strings.Contains(read, `"d"`) || strings.Contains(read, b64(priv)) {
		t.Fatalf("the private member came back: %s", read)
	}
	if !strings.Contains(read, b64(pub[1:33])) || !strings.Contains(read, `"kid":"k1"`) {
		t.Fatalf("the public key did not come back whole: %s", read)
	}
	asRead, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Apply(ctx, asRead, "from-get.json"); err != nil {
		t.Fatalf("apply what get returned: %v", err)
	}
}
