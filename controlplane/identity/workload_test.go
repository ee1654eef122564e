package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/controlplane/identity"
)

// TestSignRecordsTheWorkloadsSVID: the CA records which SVID a workload
// holds when the caller names a workload of its own service, and only then;
// the name never costs the caller its SVID.
func TestSignRecordsTheWorkloadsSVID(t *testing.T) {
	m := newMesh(t, nil)
	c := m.client(t, nil)
	for _, tc := range []struct {
		workload string
		recorded bool
	}{
		{"web.default@127.0.0.1:8443", true},
		{"payments.default@127.0.0.1:8443", false}, // another service's workload
		{"web.default@", false},
		{"web.default@127.0.0.1:1/x", false},
	} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+m.token(t, "web", "default"),
			identity.WorkloadHeader, tc.workload)
		resp, err := c.Sign(ctx, &meshv1.SignRequest{CsrDer: csr, Service: "web", Namespace: "default"})
		cancel()
		if err != nil {
			t.Fatalf("workload %q: %v", tc.workload, err)
		}
		leaf, err := x509.ParseCertificate(resp.GetCertChainDer()[0])
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.kv.Get(context.Background(), "/weft/ca/svids/"+tc.workload)
		if err != nil {
			t.Fatal(err)
		}
		if !tc.recorded {
			if len(got.Kvs) != 0 {
				t.Errorf("workload %q named by web's proxy was recorded", tc.workload)
			}
			continue
		}
		if len(got.Kvs) != 1 {
			t.Fatalf("workload %q: no SVID on record", tc.workload)
		}
		var rec struct{ Serial string }
		if err := json.Unmarshal(got.Kvs[0].Value, &rec); err != nil || rec.Serial != leaf.SerialNumber.Text(16) {
			t.Errorf("record %s = %s, want serial %s", got.Kvs[0].Key, got.Kvs[0].Value, leaf.SerialNumber.Text(16))
		}
	}
}
