package ca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/storetest"
)

// run runs c.Run until the test ends.
func run(t *testing.T, c *ca.CA) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within 20s: %v", what, err)
}

func csrFor(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// verifies reports whether chain (leaf first) verifies to one of roots.
func verifies(chain [][]byte, roots ...*x509.Certificate) error {
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return err
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, der := range chain[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		inter.AddCert(c)
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

func bundleOf(t *testing.T, c *ca.CA) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, der := range c.TrustBundle() {
		r, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func register(t *testing.T, kv *clientv3.Client, workload string) {
	t.Helper()
	if _, err := kv.Put(context.Background(), store.EndpointKey("default", "web", workload), "{}"); err != nil {
		t.Fatal(err)
	}
}

func signAndRecord(t *testing.T, c *ca.CA, workload string) [][]byte {
	t.Helper()
	id := spiffe.ID{TrustDomain: "weft.local", Namespace: "default", Service: "web"}
	chain, err := c.SignCSR(csrFor(t), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RecordIssued(context.Background(), workload, chain); err != nil {
		t.Fatal(err)
	}
	return chain
}

// TestRotationAcrossReplicas: two replicas on one store follow a rotation
// phase by phase; SVIDs of the new root verify under either root while both
// are trusted; the old root goes once every registered workload re-issued.
func TestRotationAcrossReplicas(t *testing.T) {
	kv := storetest.New(t).Client()
	ctx := context.Background()
	a, b := load(t, kv, "weft.local"), load(t, kv, "weft.local")
	run(t, a)
	run(t, b)
	old := rootOf(t, a)
	const web1, web2 = "web.default@127.0.0.1:1", "web.default@127.0.0.1:2"
	register(t, kv, web1)
	register(t, kv, web2)
	signAndRecord(t, a, web1)
	signAndRecord(t, b, web2)
	pool := a.TrustBundlePool()
	if a.TrustBundlePool() != pool {
		t.Error("TrustBundlePool returned another pool for the same bundle")
	}

	if err := a.StartRotation(ctx, ca.RotationOptions{Propagation: 300 * time.Millisecond, Grace: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := b.StartRotation(ctx, ca.RotationOptions{}); !errors.Is(err, ca.ErrRotationInProgress) {
		t.Fatalf("a second rotation: err = %v, want ErrRotationInProgress", err)
	}
	// Phase trust: both roots trusted on both replicas, the old one first and signing.
	for _, c := range []*ca.CA{a, b} {
		waitFor(t, "both roots in the bundle", func() error {
			if bundle := bundleOf(t, c); len(bundle) != 2 || !bundle[0].Equal(old) {
				return fmt.Errorf("bundle holds %d roots", len(bundle))
			}
			return nil
		})
	}
	var fresh *x509.Certificate
	// Phase reissue: the new root signs, first in the bundle.
	waitFor(t, "the new root signs on replica b", func() error {
		bundle := bundleOf(t, b)
		if len(bundle) != 2 || bundle[0].Equal(old) {
			return errors.New("the old root still comes first")
		}
		fresh = bundle[0]
		return nil
	})
	if a.TrustBundlePool() == pool {
		t.Error("TrustBundlePool returned the old pool after the bundle changed")
	}
	if _, err := fresh.Verify(x509.VerifyOptions{Roots: a.TrustBundlePool()}); err != nil {
		t.Errorf("the new root is not in the pool: %v", err)
	}
	chain := signAndRecord(t, b, web1)
	if err := verifies(chain, fresh); err != nil {
		t.Errorf("new SVID does not verify to the new root: %v", err)
	}
	if err := verifies(chain, old); err != nil {
		t.Errorf("new SVID does not verify to the old root through the cross certificate: %v", err)
	}
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Rotation; r == nil || r.Phase != ca.PhaseReissue || r.Workloads != 2 || r.Reissued != 1 || len(r.Pending) != 1 || r.Pending[0] != web2 {
		t.Fatalf("status during reissue: %+v", st.Rotation)
	}

	signAndRecord(t, a, web2)
	for _, c := range []*ca.CA{a, b} {
		waitFor(t, "the old root retired", func() error {
			if bundle := bundleOf(t, c); len(bundle) != 1 || !bundle[0].Equal(fresh) {
				return fmt.Errorf("bundle holds %d roots", len(bundle))
			}
			return nil
		})
	}
	st, err = b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Rotation; r == nil || r.Phase != ca.PhaseComplete || r.Reissued != 2 || r.Outcome != "every registered workload holds an SVID of the new root" {
		t.Fatalf("status after rotation: %+v", st.Rotation)
	}
	// A restarted replica loads the new root as the root.
	if got := rootOf(t, load(t, kv, "weft.local")); !got.Equal(fresh) {
		t.Fatalf("a replica started after the rotation loads root %s", got.Subject)
	}
	// Proxies whose --ca-file holds only the old root still trust the
	// control plane, and so do those with only the new one.
	serving, err := b.ServingCertificate([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, root := range []*x509.Certificate{old, fresh} {
		if err := verifies(serving.Certificate, root); err != nil {
			t.Errorf("serving certificate does not verify to %s: %v", root.Subject.CommonName, err)
		}
	}
	// The old root's key is gone from the store: the only key left is the
	// new root's.
	resp, err := kv.Get(ctx, store.PrefixCA, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for _, kv := range resp.Kvs {
		keys += strings.Count(string(kv.Value), "PRIVATE KEY-----") / 2 // BEGIN and END
	}
	if keys != 1 {
		t.Errorf("%d private keys under %s after the rotation, want 1 (the new root's)", keys, store.PrefixCA)
	}
	// SVIDs no longer carry the cross certificate.
	if chain := signAndRecord(t, a, web1); len(chain) != 1 || verifies(chain, old) == nil {
		t.Errorf("after the rotation an SVID chain has %d certificates and verifies to the old root", len(chain))
	}
}

// TestRotationGrace: a workload that never re-issues delays the retirement
// of the old root only until the grace ends. The replica that started the
// rotation is gone: another one, started later, takes it to its end.
func TestRotationGrace(t *testing.T) {
	kv := storetest.New(t).Client()
	a := load(t, kv, "weft.local")
	register(t, kv, "web.default@127.0.0.1:1")
	signAndRecord(t, a, "web.default@127.0.0.1:1")
	if err := a.StartRotation(context.Background(), ca.RotationOptions{Propagation: 100 * time.Millisecond, Grace: time.Second}); err != nil {
		t.Fatal(err)
	}
	b := load(t, kv, "weft.local")
	run(t, b)
	waitFor(t, "rotation complete", func() error {
		st, err := b.Status(context.Background())
		if err != nil {
			return err
		}
		if r := st.Rotation; r == nil || r.Phase != ca.PhaseComplete {
			return fmt.Errorf("rotation: %+v", r)
		}
		if st.Rotation.Reissued != 0 || st.Rotation.Workloads != 1 {
			t.Errorf("rotation ended with %d/%d re-issued, want 0/1", st.Rotation.Reissued, st.Rotation.Workloads)
		}
		if st.OtherSVIDs != 1 {
			t.Errorf("status counts %d SVIDs of a retired root, want 1", st.OtherSVIDs)
		}
		return nil
	})
}

func TestStatusWarnsBeforeExpiry(t *testing.T) {
	now := time.Now()
	root, rootKey := makeCA(t, nil, nil, "Test Root", now.Add(-time.Hour), now.Add(100*24*time.Hour))
	inter, interKey := makeCA(t, root, rootKey, "Test Intermediate", now.Add(-300*24*time.Hour), now.Add(10*24*time.Hour))
	ext, err := ca.NewExternal([]*x509.Certificate{inter}, interKey, []*x509.Certificate{root}, now)
	if err != nil {
		t.Fatal(err)
	}
	kv := storetest.New(t).Client()
	c, err := ca.Load(context.Background(), kv, ca.Options{Log: quiet, External: ext})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != "external" || len(st.Roots) != 1 || len(st.Intermediates) != 1 || !st.Intermediates[0].Signing {
		t.Fatalf("status: %+v", st)
	}
	if len(st.Warnings) != 1 || !contains(st.Warnings[0], "Test Intermediate", "days", "--ca-cert") {
		t.Fatalf("warnings = %q, want one about the intermediate's 10 days left", st.Warnings)
	}
}
