package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
)

// TestPrintCAStatus: a rotation in its reissue phase, as `weft ca status`
// prints it.
func TestPrintCAStatus(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	oldRoot, newRoot := "b0e9b4ed59c31a90aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "720f3a5a44c14b92bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	st := &client.CAStatus{
		TrustDomain: "weft.local", Mode: "managed",
		Roots: []client.CACertificate{
			{Subject: "CN=Weft Mesh Root CA 2030-01-02T03:00:00Z", SHA256: newRoot, NotBefore: now.Add(-time.Hour),
				NotAfter: now.AddDate(10, 0, 0), Signing: true, SVIDs: 2},
			{Subject: "CN=Weft Mesh Root CA", SHA256: oldRoot, NotBefore: now.AddDate(-9, 0, 0), NotAfter: now.Add(20 * 24 * time.Hour), SVIDs: 1},
		},
		Intermediates: []client.CACertificate{
			{Subject: "CN=Weft Mesh Root CA 2030-01-02T03:00:00Z", Issuer: "CN=Weft Mesh Root CA", SHA256: "cc11cc11cc11cc11dddd", NotAfter: now.Add(20 * 24 * time.Hour)},
		},
		Rotation: &client.CARotation{
			ID: "rotation-20300102T030000Z", Phase: "reissue", Started: now.Add(-4 * time.Minute), PhaseSince: now.Add(-3 * time.Minute),
			NextStepBy: now.Add(12 * time.Minute), OldRoot: oldRoot, NewRoot: newRoot, Workloads: 3, Reissued: 2,
			Pending: []string{"catalog.default@127.0.1.4:15006"},
		},
		Warnings: []string{`root "Weft Mesh Root CA" expires in 20 days (2030-01-22T03:04:05Z), with less than a third of its lifetime or 30 days left; run ` + "`weft ca rotate`"},
	}
	var out bytes.Buffer
	printCAStatus(&out, st, now)
	checkGolden(t, "ca-status", out.String())
}
