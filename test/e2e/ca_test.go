package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/internal/testpki"
)

// weftCLI runs a weft command against cp and returns its combined output.
func weftCLI(t *testing.T, cp *controlPlane, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(weftBin, append([]string{"--config", configFor(t, cp)}, args...)...).CombinedOutput()
	return string(out), err
}

// configFor writes a CLI config that talks to cp.
func configFor(t *testing.T, cp *controlPlane) string {
	t.Helper()
	cfg, err := client.LoadConfig(filepath.Join(cp.dataDir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	// The config names the replica that wrote it first; talk to this one.
	cfg.Server = "https://" + cp.api
	path := filepath.Join(t.TempDir(), "config")
	if err := client.WriteConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

// cliRun is a weft command running in the background.
type cliRun struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

// startCLI starts a weft command against cp; wait collects it.
func startCLI(t *testing.T, cp *controlPlane, args ...string) *cliRun {
	t.Helper()
	path := configFor(t, cp)
	r := &cliRun{out: new(bytes.Buffer), done: make(chan error, 1)}
	r.cmd = exec.Command(weftBin, append([]string{"--config", path}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() { _ = r.cmd.Process.Kill(); <-r.done })
	return r
}

func (r *cliRun) wait(limit time.Duration) (string, error) {
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return r.out.String(), err
	case <-time.After(limit):
		_ = r.cmd.Process.Kill()
		return r.out.String(), fmt.Errorf("still running after %s", limit)
	}
}

type caCerts struct {
	SVID struct {
		SpiffeID   string `json:"spiffeID"`
		Serial     string `json:"serial"`
		RootSHA256 string `json:"rootSHA256"`
	} `json:"svid"`
	TrustBundle []struct {
		Subject string `json:"subject"`
		SHA256  string `json:"sha256"`
	} `json:"trustBundle"`
}

func caCertsOf(t testing.TB, s *sidecar) caCerts {
	t.Helper()
	var c caCerts
	if err := json.Unmarshal([]byte(s.adminGet(t, "/certs")), &c); err != nil {
		t.Fatalf("/certs of %s: %v", s.service, err)
	}
	return c
}

// TestCAStatus: `weft ca status` shows the root, that it signs, the SVIDs it
// signed, and, as JSON, the same for scripts.
func TestCAStatus(t *testing.T) {
	cp := startControl(t, controlOpts{})
	back := startBackend(t, nextIP(), "payments", nil)
	startSidecar(t, cp, sidecarOpts{service: "payments", app: back.addr}).waitReady(t)

	var st client.CAStatus
	eventually(t, 10*time.Second, "the proxy's SVID on record", func() error {
		out, err := weftCLI(t, cp, "ca", "status", "-o", "json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		st = client.CAStatus{}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if len(st.Roots) != 1 || st.Roots[0].SVIDs != 1 {
			return fmt.Errorf("roots: %+v", st.Roots)
		}
		return nil
	})
	if st.Mode != "managed" || st.TrustDomain != "weft.local" || !st.Roots[0].Signing || st.Rotation != nil || len(st.Warnings) != 0 {
		t.Fatalf("status: %+v", st)
	}
	out, err := weftCLI(t, cp, "ca", "status")
	if err != nil {
		t.Fatalf("weft ca status: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Trust domain: weft.local (managed CA)",
		"ROOT", "SHA256", "NOT AFTER", "LEFT", "SIGNING", "SVIDS",
		"CN=Weft Mesh Root CA", st.Roots[0].SHA256[:16], st.Roots[0].NotAfter.UTC().Format(time.RFC3339),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("weft ca status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Warnings") {
		t.Errorf("a fresh root has warnings:\n%s", out)
	}
}

// TestCARotationUnderLoad: two control-plane replicas on one etcd, a client
// proxy on one and a server proxy on the other, steady traffic between them;
// `weft ca rotate` walks through its phases, every proxy re-issues its SVID
// from the new root, the old root leaves every bundle, and no request fails.
func TestCARotationUnderLoad(t *testing.T) {
	etcd := startEtcd(t)
	a := startControl(t, controlOpts{etcd: []string{etcd}})
	b := startControl(t, controlOpts{etcd: []string{etcd}})
	ip := nextIP()
	back := startBackend(t, ip, "catalog", nil)
	catalog := startSidecar(t, a, sidecarOpts{service: "catalog", app: back.addr, ip: ip}).waitReady(t)
	front := startSidecar(t, b, sidecarOpts{service: "frontend", upstreams: []string{"catalog"}, token: a.token(t, "frontend")}).waitReady(t)
	waitEndpoints(t, front, "catalog")
	proxies := []*sidecar{catalog, front}

	before, err := a.client.CAStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	oldRoot := before.Roots[0].SHA256
	for _, s := range proxies {
		if c := caCertsOf(t, s); c.SVID.RootSHA256 != oldRoot {
			t.Fatalf("%s's SVID chains to %q before the rotation, want the root %s", s.service, c.SVID.RootSHA256, oldRoot)
		}
	}

	l := startLoad("http://"+front.upstreams["catalog"]+"/items", 10*time.Millisecond)
	time.Sleep(time.Second)
	rotate := startCLI(t, b, "ca", "rotate", "--propagation", "3s", "--grace", "2m", "--timeout", "90s")
	// Endpoints that join mid-rotation make the client proxy open new mTLS
	// connections in each phase: one joins while the old root still signs
	// and must re-issue, one joins once the new root signs.
	joining := map[string]*backend{}
	for _, phase := range []string{"trust", "reissue"} {
		eventually(t, 30*time.Second, "phase "+phase, func() error {
			st, err := a.client.CAStatus(context.Background())
			if err != nil {
				return err
			}
			if st.Rotation == nil || st.Rotation.Phase != phase {
				return fmt.Errorf("rotation: %+v", st.Rotation)
			}
			return nil
		})
		ip := nextIP()
		joining[phase] = startBackend(t, ip, "catalog", nil)
		proxies = append(proxies, startSidecar(t, a, sidecarOpts{service: "catalog", app: joining[phase].addr, ip: ip}))
	}
	out, err := rotate.wait(90 * time.Second)
	if err != nil {
		l.finish()
		t.Fatalf("weft ca rotate: %v\n%s", err, out)
	}
	t.Logf("weft ca rotate:\n%s", out)
	for _, want := range []string{"rotation rotation-", "phase trust", "phase reissue", "proxies re-issued their SVID", "phase complete", "every registered workload holds an SVID of the new root"} {
		if !strings.Contains(out, want) {
			t.Errorf("weft ca rotate output lacks %q", want)
		}
	}
	for _, s := range proxies {
		s.waitReady(t)
	}

	after, err := a.client.CAStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	newRoot := after.Roots[0].SHA256
	if len(after.Roots) != 1 || newRoot == oldRoot || after.Rotation == nil || after.Rotation.Phase != "complete" ||
		after.Rotation.NewRoot != newRoot || after.Rotation.Reissued != after.Rotation.Workloads {
		t.Fatalf("replica a after the rotation: %+v", after)
	}
	for _, s := range proxies {
		eventually(t, 10*time.Second, s.service+" holds only the new root", func() error {
			c := caCertsOf(t, s)
			if c.SVID.RootSHA256 != newRoot {
				return fmt.Errorf("SVID chains to %q, want the new root %s", c.SVID.RootSHA256, newRoot)
			}
			if len(c.TrustBundle) != 1 || c.TrustBundle[0].SHA256 != newRoot {
				return fmt.Errorf("trust bundle: %+v", c.TrustBundle)
			}
			return nil
		})
	}
	// New mTLS connections under the new root only: a proxy that joins now.
	late := startSidecar(t, a, sidecarOpts{service: "late", upstreams: []string{"catalog"}}).waitReady(t)
	waitEndpoints(t, late, "catalog")
	if code, body, _ := get(t, http.DefaultClient, "http://"+late.upstreams["catalog"]+"/after"); code != 200 {
		t.Fatalf("a proxy that joined after the rotation: %d %s", code, body)
	}
	eventually(t, 10*time.Second, "the endpoints that joined during the rotation get traffic", func() error {
		for phase, b := range joining {
			if b.hits.Load() == 0 {
				return fmt.Errorf("the catalog that joined in phase %s got no request", phase)
			}
		}
		return nil
	})
	ok, failed, errs := l.finish()
	t.Logf("under rotation: %d requests ok, %d failed", ok, failed)
	if failed != 0 || ok < 200 {
		t.Fatalf("%d requests failed (%d ok) during the rotation: %v", failed, ok, errs)
	}
	// Replica b agrees: one root, the new one, and the rotation is done.
	out, err = weftCLI(t, b, "ca", "status", "-o", "json")
	var onB client.CAStatus
	if err != nil || json.Unmarshal([]byte(out), &onB) != nil {
		t.Fatalf("weft ca status -o json on replica b: %v\n%s", err, out)
	}
	if len(onB.Roots) != 1 || onB.Roots[0].SHA256 != newRoot || !onB.Roots[0].Signing || onB.Rotation == nil || onB.Rotation.Phase != "complete" {
		t.Fatalf("replica b after the rotation: %s", out)
	}
	if out, err = weftCLI(t, b, "ca", "status"); err != nil || !strings.Contains(out, "phase complete") || strings.Contains(out, oldRoot[:16]+"   ") {
		t.Fatalf("weft ca status on replica b: %v\n%s", err, out)
	}
}

// TestCAExternal: the control plane signs SVIDs with an intermediate made
// here; a request flows between two proxies, and the SVID the server proxy
// presents verifies to this test's root, not to any root of Weft's own.
func TestCAExternal(t *testing.T) {
	root := testpki.NewCA(t, "Test Corp Root")
	inter, interKey := makeIntermediate(t, root, "Test Corp Mesh Intermediate")
	dir := t.TempDir()
	certFile, keyFile, bundleFile := filepath.Join(dir, "inter.crt"), filepath.Join(dir, "inter.key"), filepath.Join(dir, "root.crt")
	keyDER, err := x509.MarshalPKCS8PrivateKey(interKey)
	if err != nil {
		t.Fatal(err)
	}
	writeCAFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw}))
	writeCAFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	writeCAFile(t, bundleFile, root.PEM())

	// A key that is not the certificate's is refused at once, saying so.
	_, otherKey := makeIntermediate(t, root, "Other")
	otherDER, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	wrongKey := filepath.Join(dir, "wrong.key")
	writeCAFile(t, wrongKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherDER}))
	bad := startControlArgs(t, false, "--ca-cert", certFile, "--ca-key", wrongKey, "--ca-bundle", bundleFile)
	select {
	case <-bad.done:
	case <-time.After(30 * time.Second):
		t.Fatal("a control plane with a mismatched --ca-key kept running")
	}
	if out := bad.output(); bad.err == nil || !strings.Contains(out, "--ca-key does not belong to --ca-cert") {
		t.Fatalf("mismatched key: exit %v, output:\n%s", bad.err, out)
	}

	cp := startControlArgs(t, true, "--ca-cert", certFile, "--ca-key", keyFile, "--ca-bundle", bundleFile)
	if ca, _ := os.ReadFile(cp.caFile()); string(ca) != string(root.PEM()) {
		t.Fatalf("ca.crt for proxies is not the test's root:\n%s", ca)
	}
	ip := nextIP()
	back := startBackend(t, ip, "catalog", nil)
	catalog := startSidecar(t, cp, sidecarOpts{service: "catalog", app: back.addr, ip: ip}).waitReady(t)
	front := startSidecar(t, cp, sidecarOpts{service: "frontend", upstreams: []string{"catalog"}}).waitReady(t)
	waitEndpoints(t, front, "catalog")
	if code, body, _ := get(t, http.DefaultClient, "http://"+front.upstreams["catalog"]+"/x"); code != 200 || !strings.HasPrefix(body, "catalog GET /x") {
		t.Fatalf("through two proxies: %d %s", code, body)
	}

	// The SVID catalog's proxy serves, seen by a client that presents one
	// issued by the same intermediate.
	tester := issueFrom(t, inter, interKey, "spiffe://weft.local/ns/default/sa/tester")
	var served []*x509.Certificate
	conn, err := tls.Dial("tcp", catalog.inbound, &tls.Config{
		InsecureSkipVerify: true, // verified below, against the test's root only
		Certificates:       []tls.Certificate{tester},
		NextProtos:         []string{"h2"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			served = cs.PeerCertificates
			return nil
		},
	})
	if err != nil {
		t.Fatalf("TLS to catalog's inbound: %v", err)
	}
	conn.Close()
	if len(served) != 2 {
		t.Fatalf("catalog serves a chain of %d certificates, want leaf + intermediate", len(served))
	}
	inters := x509.NewCertPool()
	inters.AddCert(served[1])
	if _, err := served[0].Verify(x509.VerifyOptions{Roots: root.Pool(), Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("served SVID does not verify to the test's root: %v", err)
	}
	if len(served[0].URIs) != 1 || served[0].URIs[0].String() != "spiffe://weft.local/ns/default/sa/catalog" {
		t.Fatalf("served SVID URIs = %v", served[0].URIs)
	}

	st, err := cp.client.CAStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != "external" || len(st.Roots) != 1 || st.Roots[0].Subject != "CN=Test Corp Root" ||
		len(st.Intermediates) != 1 || !st.Intermediates[0].Signing {
		t.Fatalf("status with an external CA: %+v", st)
	}
	if out, err := weftCLI(t, cp, "ca", "rotate"); err == nil || !strings.Contains(out, "external CA") {
		t.Fatalf("weft ca rotate with an external CA: %v\n%s", err, out)
	}
}

// startControlArgs starts `weft control` with extra flags; wait says
// whether to wait until it answers.
func startControlArgs(t *testing.T, wait bool, extra ...string) *controlPlane {
	t.Helper()
	ip := nextIP()
	cp := &controlPlane{dataDir: t.TempDir(), grpc: freeAddr(t, ip), api: freeAddr(t, ip), dash: freeAddr(t, ip)}
	cp.proc = startProc(t, "control-"+ip, append(cp.args(), extra...)...)
	if wait {
		cp.waitUp(t)
	}
	return cp
}

func writeCAFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// makeIntermediate makes a CA certificate signed by root.
func makeIntermediate(t *testing.T, root *testpki.CA, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(12 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, &key.PublicKey, root.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// issueFrom makes a client SVID for uri signed by the intermediate, sent
// with it.
func issueFrom(t *testing.T, inter *x509.Certificate, interKey *ecdsa.PrivateKey, uri string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.URIs = append(tmpl.URIs, u)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, &key.PublicKey, interKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, inter.Raw}, PrivateKey: key}
}
