package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// gatewayCA is a user's own CA for the certificates an ingress gateway
// serves to clients outside the mesh: nothing to do with the mesh's CA.
type gatewayCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newGatewayCA(t *testing.T) *gatewayCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shop test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &gatewayCA{cert: cert, key: key, pool: pool}
}

// issue returns a PEM certificate and key for host, with serial as its
// serial number so that the test can tell certificates apart.
func (ca *gatewayCA) issue(t *testing.T, host string, serial int64) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// indent indents every line of a PEM block for a YAML block scalar.
func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

// gatewayDoc is the Gateway of the test: HTTPS on httpsPort with one
// certificate per host, HTTP on httpPort redirecting to it.
func gatewayDoc(httpsPort, httpPort int, shopCert, shopKey, apiCert, apiKey string) string {
	return fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: Gateway
metadata: {name: public}
spec:
  service: ingress
  listeners:
  - name: https
    port: %d
    protocol: HTTPS
    hosts: [shop.example.test, api.example.test]
    tls:
      certificates:
      - hosts: [shop.example.test]
        certificatePEM: |
%s
        privateKeyPEM: |
%s
      - hosts: [api.example.test]
        certificatePEM: |
%s
        privateKeyPEM: |
%s
  - {name: http, port: %d, protocol: HTTP, httpsRedirect: true, httpsPort: %d}
`, httpsPort, indent(shopCert, 10), indent(shopKey, 10), indent(apiCert, 10), indent(apiKey, 10), httpPort, httpsPort)
}

// TestIngressGateway runs an ingress gateway in front of two mesh services:
// a client outside the mesh reaches each host over HTTPS with its own
// certificate (chosen by SNI), a gateway Route splits traffic by weight,
// HTTP is redirected to HTTPS, an unknown host gets 404, and a new
// certificate applied to the Gateway is served without restarting it.
func TestIngressGateway(t *testing.T) {
	cp := startMeshControl(t)
	startWorkloads(t, cp, "shop", []string{"v1"}, nil)
	startWorkloads(t, cp, "shop-next", []string{"v2"}, nil)
	startWorkloads(t, cp, "api", []string{"v1"}, nil)

	ca := newGatewayCA(t)
	shopCert, shopKey := ca.issue(t, "shop.example.test", 100)
	apiCert, apiKey := ca.issue(t, "api.example.test", 200)

	gwIP := nextIP()
	ports := distinctAddrs(t, gwIP, 3)
	portOf := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		var n int
		fmt.Sscan(p, &n)
		return n
	}
	httpsPort, httpPort := portOf(ports[0]), portOf(ports[1])
	admin := ports[2]

	cp.apply(t, gatewayDoc(httpsPort, httpPort, shopCert, shopKey, apiCert, apiKey)+`---
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: shop-public}
spec:
  service: shop
  gateways: [public]
  hosts: [shop.example.test]
  rules:
  - name: split
    match: [{path: {prefix: /split}}]
    backends: [{service: shop, weight: 50}, {service: shop-next, weight: 50}]
    timeout: 5s
    retries: {attempts: 2}
  - backends: [{service: shop}]
---
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: api-public}
spec:
  service: api
  gateways: [public]
  hosts: [api.example.test]
  rules:
  - backends: [{service: api}]
`)

	gw := startProc(t, "ingress-"+gwIP, "proxy", "--mode", "ingress", "--service", "ingress",
		"--control", cp.grpc, "--token", cp.token(t, "ingress"), "--ca-file", cp.caFile(),
		"--admin", admin, "--listen-ip", gwIP, "--drain-delay", "100ms")
	eventually(t, 30*time.Second, "ingress gateway ready", func() error {
		if gw.exited() {
			t.Fatalf("ingress gateway exited: %v\n%s", gw.err, gw.output())
		}
		return httpGetOK("http://" + admin + "/ready")
	})

	// The client resolves every example.test name to the gateway and
	// trusts only the user's CA: the mesh's certificates are never shown.
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return dialer.DialContext(ctx, network, net.JoinHostPort(gwIP, port))
		},
		DisableKeepAlives: true, // every request a new handshake: rotation shows at once
	}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{
		Transport: transport, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	get := func(url string, host string) (*http.Response, string, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return nil, "", err
		}
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, string(body), err
	}
	serial := func(resp *http.Response) int64 {
		if resp == nil || resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
			return 0
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}

	shopURL := fmt.Sprintf("https://shop.example.test:%d/", httpsPort)
	apiURL := fmt.Sprintf("https://api.example.test:%d/", httpsPort)
	eventually(t, 30*time.Second, "shop through the gateway", func() error {
		resp, _, err := get(shopURL, "")
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("x-backend") != "shop-v1" {
			return fmt.Errorf("status %d from %q", resp.StatusCode, resp.Header.Get("x-backend"))
		}
		return nil
	})

	// Each host is served its own certificate, verified by the client.
	for _, c := range []struct {
		url, backend string
		serial       int64
	}{{shopURL, "shop-v1", 100}, {apiURL, "api-v1", 200}} {
		resp, _, err := get(c.url, "")
		if err != nil {
			t.Fatalf("GET %s: %v", c.url, err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("x-backend") != c.backend {
			t.Errorf("GET %s: status %d from %q, want 200 from %s", c.url, resp.StatusCode, resp.Header.Get("x-backend"), c.backend)
		}
		if got := serial(resp); got != c.serial {
			t.Errorf("GET %s: certificate serial %d, want %d (the host's own)", c.url, got, c.serial)
		}
	}

	// A name the Gateway has no certificate for gets no handshake.
	if _, _, err := get(fmt.Sprintf("https://other.example.test:%d/", httpsPort), ""); err == nil {
		t.Error("a TLS handshake for other.example.test succeeded: no certificate serves it")
	}
	// A host no Route serves gets 404 (SNI shop, Host header elsewhere).
	if resp, _, err := get(shopURL, fmt.Sprintf("nowhere.example.test:%d", httpsPort)); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown host: %v, status %v, want 404", err, statusOf(resp))
	}

	// The weighted split: both services see about half of the requests.
	counts := map[string]int{}
	const n = 200
	for range n {
		resp, _, err := get(shopURL+"split", "")
		if err != nil {
			t.Fatalf("GET /split: %v", err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /split: status %d", resp.StatusCode)
		}
		counts[resp.Header.Get("x-backend")]++
	}
	for _, b := range []string{"shop-v1", "shop-next-v2"} {
		if share := float64(counts[b]) / n; share < 0.3 || share > 0.7 {
			t.Errorf("split: %s got %.0f%% of %d requests (%v), want about 50%%", b, 100*share, n, counts)
		}
	}

	// http:// on the HTTP listener is sent to https.
	plain := &http.Client{
		Transport:     &http.Transport{DialContext: transport.DialContext, DisableKeepAlives: true},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := plain.Get(fmt.Sprintf("http://shop.example.test:%d/cart?item=7", httpPort))
	if err != nil {
		t.Fatalf("plain GET: %v", err)
	}
	resp.Body.Close()
	wantLoc := fmt.Sprintf("https://shop.example.test:%d/cart?item=7", httpsPort)
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != wantLoc {
		t.Errorf("plain GET: %d to %q, want 301 to %q", resp.StatusCode, resp.Header.Get("Location"), wantLoc)
	}

	// Rotation: a new certificate for shop, applied to the Gateway, is
	// served to the next handshake by the same gateway process.
	newCert, newKey := ca.issue(t, "shop.example.test", 101)
	cp.apply(t, gatewayDoc(httpsPort, httpPort, newCert, newKey, apiCert, apiKey))
	eventually(t, 30*time.Second, "the rotated certificate", func() error {
		resp, _, err := get(shopURL, "")
		if err != nil {
			return err
		}
		if got := serial(resp); got != 101 || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("serial %d, status %d", got, resp.StatusCode)
		}
		return nil
	})
	if gw.exited() {
		t.Fatal("the gateway restarted to rotate its certificate")
	}
	if resp, _, err := get(apiURL, ""); err != nil || serial(resp) != 200 {
		t.Errorf("api after shop's rotation: %v, serial %d, want 200", err, serial(resp))
	}
}

func statusOf(resp *http.Response) any {
	if resp == nil {
		return nil
	}
	return resp.StatusCode
}
