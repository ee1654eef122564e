package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/store"
)

// runCA follows the CA's records, which takes a rotation's steps, until the
// test ends.
func runCA(t *testing.T, c *ca.CA) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func bundleRoots(t *testing.T, c *ca.CA) []*x509.Certificate {
	t.Helper()
	var roots []*x509.Certificate
	for _, der := range c.TrustBundle() {
		roots = append(roots, mustParse(t, der))
	}
	return roots
}

// until polls f, handing the proxy the CA's current bundle as SDS ROOTCA
// would, until f succeeds.
func until(t *testing.T, p *proxy, cp *controlPlane, limit time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		p.TrustBundleChanged(bundleRoots(t, cp.ca))
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, limit, err)
}

// TestReissueWhenSigningRootChanges: an SVID an hour from its rotation is
// re-issued within ReissueSpread once the bundle names a new signing root.
func TestReissueWhenSigningRootChanges(t *testing.T) {
	cp := startControlPlane(t)
	runCA(t, cp.ca)
	p := newProxy(t, cp, "web", cp.joinToken(t, "web"))
	// A registered workload that names itself: the rotation waits for it.
	p.opts.WorkloadID = "web.default@127.0.0.1:1"
	if _, err := cp.kv.Put(context.Background(), store.EndpointKey("default", "web", p.opts.WorkloadID), "{}"); err != nil {
		t.Fatal(err)
	}
	if err := p.Join(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := p.Current()
	p.TrustBundleChanged(bundleRoots(t, cp.ca))
	t.Cleanup(runSource(t, p))

	if err := cp.ca.StartRotation(context.Background(), ca.RotationOptions{Propagation: 100 * time.Millisecond, Grace: time.Hour}); err != nil {
		t.Fatal(err)
	}
	var fresh *x509.Certificate
	until(t, p, cp, 3*ReissueSpread, "an SVID of the new root", func() error {
		roots := bundleRoots(t, cp.ca)
		cur := p.Current()
		if len(roots) != 2 || cur == old || !cur.ChainsTo(roots[0]) {
			return errors.New("still the SVID of the old root")
		}
		fresh = roots[0]
		return nil
	})
	if tokenReads, _ := p.counts(); tokenReads != 1 {
		t.Errorf("the join token was read %d times; the re-issue should authenticate with the SVID", tokenReads)
	}
	if p.Certificate() == nil || !p.Current().ChainsTo(fresh) {
		t.Fatal("the new SVID is not in use")
	}
	// The proxy's new SVID is on record, so the old root is retired.
	until(t, p, cp, 5*time.Second, "the old root retired", func() error {
		if roots := bundleRoots(t, cp.ca); len(roots) != 1 || !roots[0].Equal(fresh) {
			return errors.New("the bundle still holds the old root")
		}
		return nil
	})
	if p.Certificate() == nil {
		t.Fatal("the SVID of the new root is no longer presented")
	}
}

// TestRejoinWhenRootRetired: a proxy whose SVID's root left the bundle
// stops presenting it and rejoins with its token.
func TestRejoinWhenRootRetired(t *testing.T) {
	cp := startControlPlane(t)
	runCA(t, cp.ca)
	p := newProxy(t, cp, "web", cp.joinToken(t, "web"))
	if err := p.Join(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := p.Current()
	oldRoot := bundleRoots(t, cp.ca)[0]
	// Rotate while the proxy does not follow: the grace retires the old root.
	if err := cp.ca.StartRotation(context.Background(), ca.RotationOptions{Propagation: 50 * time.Millisecond, Grace: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for roots := bundleRoots(t, cp.ca); len(roots) != 1 || roots[0].Equal(oldRoot); roots = bundleRoots(t, cp.ca) {
		if time.Now().After(deadline) {
			t.Fatal("the rotation did not complete")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.TrustBundleChanged(bundleRoots(t, cp.ca))
	if p.Certificate() != nil {
		t.Fatal("an SVID of a retired root is still presented")
	}
	t.Cleanup(runSource(t, p))
	until(t, p, cp, 3*ReissueSpread, "a new SVID", func() error {
		if p.Current() == old || p.Certificate() == nil {
			return errors.New("still the orphaned SVID")
		}
		return nil
	})
	if tokenReads, _ := p.counts(); tokenReads != 2 {
		t.Errorf("the join token was read %d times, want 2 (join, rejoin)", tokenReads)
	}
}
