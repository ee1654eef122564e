// Package storetest starts a fast embedded etcd for tests.
package storetest

import (
	"context"
	"testing"

	"github.com/weftmesh/weft/controlplane/store"
)

// New opens a store on a fresh embedded etcd in a temporary directory; the
// test's cleanup closes it.
func New(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir(), Fast: true})
	if err != nil {
		t.Fatalf("open test store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
