package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/internal/testpki"
)

// meshRoot reads the mesh's real root CA out of etcd, as an attacker who
// stole an old certificate, or one who controls an endpoint, might hold
// what it signs.
func meshRoot(t *testing.T, etcdURL string) *testpki.CA {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Get(context.Background(), "/weft/ca/root")
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("read root: %v", err)
	}
	var stored struct{ Cert, Key string }
	if err := json.Unmarshal(r.Kvs[0].Value, &stored); err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode([]byte(stored.Cert))
	kb, _ := pem.Decode([]byte(stored.Key))
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("root key is %T, want ECDSA", key)
	}
	return &testpki.CA{Cert: cert, Key: ecKey}
}

// mtlsGet sends one HTTPS request to an inbound listener presenting cert.
func mtlsGet(addr string, cert tls.Certificate) (int, error) {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, NextProtos: []string{"h2"}},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestStrictMTLS: the inbound listener admits only current certificates of
// the mesh, and a client proxy refuses a server with the wrong identity.
func TestStrictMTLS(t *testing.T) {
	etcdURL := startEtcd(t)
	cp := startControl(t, controlOpts{etcd: []string{etcdURL}})
	ip := nextIP()
	app := startBackend(t, ip, "catalog", nil)
	catalog := startSidecar(t, cp, sidecarOpts{service: "catalog", app: app.addr, ip: ip}).waitReady(t)
	root := meshRoot(t, etcdURL)
	frontendID := spiffe.ID{TrustDomain: "weft.local", Namespace: "default", Service: "frontend"}

	// The positive control: a current mesh certificate is admitted, so the
	// refusals below are refusals and not a broken test client.
	if code, err := mtlsGet(catalog.inbound, root.Issue(t, frontendID, testpki.Options{})); err != nil || code != 200 {
		t.Fatalf("valid mesh certificate: %d %v", code, err)
	}
	hits := app.hits.Load()

	t.Run("plaintext", func(t *testing.T) {
		resp, err := http.Get("http://" + catalog.inbound + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Fatal("plaintext request was served")
			}
		}
	})
	t.Run("foreign CA", func(t *testing.T) {
		foreign := testpki.NewCA(t, "not the mesh")
		if code, err := mtlsGet(catalog.inbound, foreign.Issue(t, frontendID, testpki.Options{})); err == nil {
			t.Fatalf("a foreign CA's certificate was admitted: %d", code)
		}
	})
	t.Run("expired", func(t *testing.T) {
		old := root.Issue(t, frontendID, testpki.Options{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
		if code, err := mtlsGet(catalog.inbound, old); err == nil {
			t.Fatalf("an expired certificate was admitted: %d", code)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		if code, err := mtlsGet(catalog.inbound, tls.Certificate{}); err == nil {
			t.Fatalf("a client without a certificate was admitted: %d", code)
		}
	})
	if got := app.hits.Load(); got != hits {
		t.Fatalf("refused clients reached the app: %d requests", got-hits)
	}
	// Each refusal is in the server-side proxy's log with its reason.
	for _, reason := range []string{
		"not TLS: a plaintext client on a mutual TLS port",
		"client certificate not signed by the mesh CA",
		"client certificate expired or not yet valid",
		"no client certificate",
	} {
		eventually(t, 5*time.Second, "the refusal logged: "+reason, func() error {
			return logged(catalog.output(), "downstream TLS handshake refused", reason)
		})
	}

	// The client side checks the server's SPIFFE ID: an endpoint of
	// "billing" registered at an address where an impostor answers with
	// a genuine mesh certificate of another service gets no request.
	t.Run("wrong server identity", func(t *testing.T) {
		impIP := nextIP()
		ln, err := net.Listen("tcp", impIP+":0")
		if err != nil {
			t.Fatal(err)
		}
		impostorCert := root.Issue(t, spiffe.ID{TrustDomain: "weft.local", Namespace: "default", Service: "impostor"}, testpki.Options{})
		var reached int
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ })}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{impostorCert}, ClientAuth: tls.RequireAnyClientCert, NextProtos: []string{"h2", "http/1.1"}}
		go srv.ServeTLS(ln, "", "")
		defer srv.Close()

		// Register the impostor's address as billing, authenticated as billing.
		billingID := spiffe.ID{TrustDomain: "weft.local", Namespace: "default", Service: "billing"}
		pool := x509.NewCertPool()
		pool.AddCert(root.Cert)
		host, _, _ := net.SplitHostPort(cp.grpc)
		conn, err := grpc.NewClient(cp.grpc, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			RootCAs: pool, ServerName: host, Certificates: []tls.Certificate{root.Issue(t, billingID, testpki.Options{})},
		})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stream, err := meshv1.NewRegistryClient(conn).Register(ctx)
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		if err := stream.Send(&meshv1.RegisterRequest{Workload: &meshv1.Workload{
			Id: xdsmeta.WorkloadID("billing", "default", addr), Service: "billing", Namespace: "default",
			Address: addr, Ready: true,
		}}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("register: %v", err)
		}
		client := startSidecar(t, cp, sidecarOpts{service: "frontend", upstreams: []string{"billing"}}).waitReady(t)
		waitEndpoints(t, client, "billing")
		for range 5 {
			code, _, hdr := get(t, http.DefaultClient, "http://"+client.upstreams["billing"]+"/")
			if code < 500 {
				t.Fatalf("request to an impostor answered %d, want a 5xx", code)
			}
			t.Logf("impostor refused: %d %s", code, hdr.Get("x-weft-error"))
		}
		if reached != 0 {
			t.Fatalf("the impostor received %d requests", reached)
		}
		eventually(t, 5*time.Second, "the impostor's refusal in the client's log", func() error {
			return logged(client.output(), "upstream TLS handshake refused", "spiffe://weft.local/ns/default/sa/impostor")
		})
	})
}

// logged finds a log line holding every one of parts.
func logged(out string, parts ...string) error {
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return nil
		}
	}
	return fmt.Errorf("no log line with %q", parts)
}
