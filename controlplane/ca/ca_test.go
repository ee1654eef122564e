package ca_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/storetest"
)

var quiet = slog.New(slog.DiscardHandler)

func load(t testing.TB, kv *clientv3.Client, td string) *ca.CA {
	t.Helper()
	c, err := ca.Load(context.Background(), kv, ca.Options{TrustDomain: td, Log: quiet})
	if err != nil {
		t.Fatalf("Load(%q): %v", td, err)
	}
	return c
}

func rootOf(t testing.TB, c *ca.CA) *x509.Certificate {
	t.Helper()
	bundle := c.TrustBundle()
	if len(bundle) != 1 {
		t.Fatalf("trust bundle holds %d roots, want 1", len(bundle))
	}
	root, err := x509.ParseCertificate(bundle[0])
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestLoadCreatesRoot(t *testing.T) {
	kv := storetest.New(t).Client()
	before := time.Now()
	root := rootOf(t, load(t, kv, "example.org"))

	if root.Subject.CommonName != "Weft Mesh Root CA" {
		t.Errorf("CN = %q", root.Subject.CommonName)
	}
	if !root.IsCA || !root.BasicConstraintsValid || root.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("root is not a CA: IsCA=%v KeyUsage=%v", root.IsCA, root.KeyUsage)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
	if pub, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("root key is %T, want ECDSA P-256", root.PublicKey)
	}
	if len(root.URIs) != 1 || root.URIs[0].String() != "spiffe://example.org" {
		t.Errorf("URI SANs = %v, want [spiffe://example.org]", root.URIs)
	}
	if want := before.AddDate(10, 0, 0); root.NotAfter.Before(want.Add(-time.Minute)) || root.NotAfter.After(want.Add(time.Minute)) {
		t.Errorf("NotAfter = %v, want about 10 years from now", root.NotAfter)
	}

	block, rest := pem.Decode(load(t, kv, "example.org").TrustBundlePEM())
	if block == nil || len(bytes.TrimSpace(rest)) != 0 || !bytes.Equal(block.Bytes, root.Raw) {
		t.Error("TrustBundlePEM does not hold exactly the root")
	}
	if _, err := root.Verify(x509.VerifyOptions{Roots: load(t, kv, "example.org").TrustBundlePool()}); err != nil {
		t.Errorf("TrustBundlePool does not hold the root: %v", err)
	}
}

func TestLoadConcurrentReplicasShareOneRoot(t *testing.T) {
	st := storetest.New(t)
	const replicas = 4
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	roots := make([][]byte, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		// Each replica has its own connection, as separate processes would.
		kv, err := clientv3.New(clientv3.Config{Endpoints: st.Client().Endpoints(), Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kv.Close() })
		wg.Go(func() {
			c, err := ca.Load(context.Background(), kv, ca.Options{TrustDomain: "weft.local", Log: log})
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
				return
			}
			roots[i] = c.TrustBundle()[0]
		})
	}
	wg.Wait()
	for i := 1; i < replicas; i++ {
		if !bytes.Equal(roots[0], roots[i]) {
			t.Fatalf("replica %d has a different root from replica 0", i)
		}
	}
	if n := strings.Count(logs.String(), "created mesh root CA"); n != 1 {
		t.Errorf("%d replicas created a root, want 1:\n%s", n, logs.String())
	}
	// A later start still reads the same root.
	if got := rootOf(t, load(t, st.Client(), "weft.local")); !bytes.Equal(got.Raw, roots[0]) {
		t.Error("a restart created another root")
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLoadDefaultTrustDomain(t *testing.T) {
	c := load(t, storetest.New(t).Client(), "")
	if c.TrustDomain() != ca.DefaultTrustDomain {
		t.Errorf("TrustDomain() = %q, want %q", c.TrustDomain(), ca.DefaultTrustDomain)
	}
}

func TestLoadRefusesAnotherTrustDomain(t *testing.T) {
	kv := storetest.New(t).Client()
	load(t, kv, "prod.example")
	_, err := ca.Load(context.Background(), kv, ca.Options{TrustDomain: "staging.example", Log: quiet})
	want := `this store was initialised with trust domain "prod.example"; --trust-domain "staging.example" cannot change it`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Load with another trust domain: got %v, want %q", err, want)
	}
}

func TestLoadRejectsBadTrustDomain(t *testing.T) {
	kv := storetest.New(t).Client()
	for _, td := range []string{"Upper.Case", "has space", "slash/path", ".leading", "trailing.", "port:80"} {
		if _, err := ca.Load(context.Background(), kv, ca.Options{TrustDomain: td, Log: quiet}); err == nil {
			t.Errorf("Load(%q) succeeded", td)
		}
	}
	// Nothing was recorded by the refused attempts.
	load(t, kv, "good.example")
}

func TestLoadRejectsDamagedRoot(t *testing.T) {
	for name, value := range map[string]string{
		"not json": "garbage",
		"no cert":  `{"cert":"","key":""}`,
		"bad cert": `{"cert":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n","key":""}`,
	} {
		t.Run(name, func(t *testing.T) {
			kv := storetest.New(t).Client()
			if _, err := kv.Put(context.Background(), store.PrefixCA+"root", value); err != nil {
				t.Fatal(err)
			}
			if _, err := ca.Load(context.Background(), kv, ca.Options{Log: quiet}); err == nil {
				t.Fatal("Load accepted a damaged root")
			}
		})
	}
}

func TestLoadRejectsRootWithForeignKey(t *testing.T) {
	ctx := context.Background()
	a, b := storetest.New(t).Client(), storetest.New(t).Client()
	load(t, a, "weft.local")
	load(t, b, "weft.local")
	recA, err := a.Get(ctx, store.PrefixCA+"root")
	if err != nil {
		t.Fatal(err)
	}
	recB, err := b.Get(ctx, store.PrefixCA+"root")
	if err != nil {
		t.Fatal(err)
	}
	var rootA, rootB map[string]string
	if err := json.Unmarshal(recA.Kvs[0].Value, &rootA); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(recB.Kvs[0].Value, &rootB); err != nil {
		t.Fatal(err)
	}
	rootA["key"] = rootB["key"]
	spliced, _ := json.Marshal(rootA)
	if _, err := a.Put(ctx, store.PrefixCA+"root", string(spliced)); err != nil {
		t.Fatal(err)
	}
	_, err = ca.Load(ctx, a, ca.Options{Log: quiet})
	if err == nil || !strings.Contains(err.Error(), "key does not belong to the certificate") {
		t.Fatalf("Load with another root's key: got %v", err)
	}
}
