package store_test

import (
	"context"
	"testing"

	"github.com/weftmesh/weft/controlplane/store/storetest"
)

func TestOpenEmbedded(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	if _, err := s.Client().Put(ctx, "/weft/x", "1"); err != nil {
		t.Fatal(err)
	}
	r, err := s.Client().Get(ctx, "/weft/x")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "1" {
		t.Fatalf("get: %v %v", r, err)
	}
	s.Close()
	s.Close() // idempotent
}
