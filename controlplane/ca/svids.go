package ca

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/controlplane/store"
)

// prefixSVIDs holds one record per workload: the SVID it was last issued.
// It is what tells a rotation which workloads still hold an SVID of the old
// root, and `weft ca status` how many SVIDs each root still has out there.
const prefixSVIDs = store.PrefixCA + "svids/"

// recordGCEvery is how often a replica removes the records of SVIDs that
// have expired (workloads that went away).
const recordGCEvery = 10 * time.Minute

// svidRecord is stored at prefixSVIDs + workload ID.
type svidRecord struct {
	Serial string `json:"serial"`
	// Signer is the SHA-256 fingerprint of the certificate whose key signed
	// the SVID (the root, or the external intermediate).
	Signer   string    `json:"signer"`
	Issued   time.Time `json:"issued"`
	NotAfter time.Time `json:"notAfter"`
}

// RecordIssued notes that workload (a workload ID, <service>.<namespace>@<addr>)
// now holds the SVID chain, leaf first, that SignCSR returned. A workload's
// record replaces its previous one.
func (c *CA) RecordIssued(ctx context.Context, workload string, chain [][]byte) error {
	if workload == "" || strings.Contains(workload, "/") {
		return fmt.Errorf("ca: record SVID: workload ID %q is empty or holds a '/'", workload)
	}
	if len(chain) == 0 {
		return fmt.Errorf("ca: record SVID of %s: empty chain", workload)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return fmt.Errorf("ca: record SVID of %s: %w", workload, err)
	}
	data, err := json.Marshal(svidRecord{
		Serial: leaf.SerialNumber.Text(16), Signer: c.signerOf(leaf),
		Issued: time.Now().UTC(), NotAfter: leaf.NotAfter.UTC(),
	})
	if err != nil {
		return fmt.Errorf("ca: record SVID of %s: %w", workload, err)
	}
	if _, err := c.kv.Put(ctx, prefixSVIDs+workload, string(data)); err != nil {
		return fmt.Errorf("ca: record SVID of %s: %w", workload, err)
	}
	return nil
}

// signerOf returns the fingerprint of the certificate, among those this CA
// signs or signed with, whose key signed leaf; "" when none did.
func (c *CA) signerOf(leaf *x509.Certificate) string {
	candidates := []*x509.Certificate{c.current.Load().cert}
	if st := c.state.Load(); st != nil {
		candidates = append(candidates, st.root.cert)
		if st.rot != nil {
			candidates = append(candidates, st.rot.newCert, st.rot.oldCert)
		}
	}
	for _, cand := range candidates {
		if leaf.CheckSignatureFrom(cand) == nil {
			return fingerprint(cand)
		}
	}
	return ""
}

// progress is how far the workloads registered now are in a rotation.
type progress struct {
	workloads int
	reissued  int
	pending   []string // workload IDs, sorted
	// bySigner counts the unexpired SVIDs recorded for each signer, whether
	// or not their workload is still registered.
	bySigner map[string]int
}

// progress compares the registered workloads with the SVIDs recorded for
// them: a workload is re-issued once it holds an unexpired SVID signed by
// the rotation's new root.
func (c *CA) progress(ctx context.Context, st *caState, now time.Time) (progress, error) {
	resp, err := c.kv.Txn(ctx).Then(
		clientv3.OpGet(store.PrefixEndpoints, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(prefixSVIDs, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return progress{}, fmt.Errorf("ca: read workloads and SVID records: %w", err)
	}
	records := map[string]svidRecord{}
	p := progress{bySigner: map[string]int{}}
	for _, kv := range resp.Responses[1].GetResponseRange().GetKvs() {
		var rec svidRecord
		if json.Unmarshal(kv.Value, &rec) != nil || !now.Before(rec.NotAfter) {
			continue
		}
		records[strings.TrimPrefix(string(kv.Key), prefixSVIDs)] = rec
		p.bySigner[rec.Signer]++
	}
	want := ""
	if st != nil && st.rot != nil {
		want = fingerprint(st.rot.newCert)
	}
	for _, kv := range resp.Responses[0].GetResponseRange().GetKvs() {
		_, _, id, err := store.ParseEndpointKey(string(kv.Key))
		if err != nil {
			continue
		}
		p.workloads++
		if rec, ok := records[id]; ok && want != "" && rec.Signer == want {
			p.reissued++
			continue
		}
		p.pending = append(p.pending, id)
	}
	slices.Sort(p.pending)
	return p, nil
}

// collectRecords removes the records of SVIDs that have expired.
func (c *CA) collectRecords(ctx context.Context, now time.Time) error {
	resp, err := c.kv.Get(ctx, prefixSVIDs, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("ca: read SVID records: %w", err)
	}
	for _, kv := range resp.Kvs {
		var rec svidRecord
		if json.Unmarshal(kv.Value, &rec) == nil && now.Before(rec.NotAfter) {
			continue
		}
		// Only if nobody replaced it since: a delete never loses a new record.
		_, err := c.kv.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(string(kv.Key))).Commit()
		if err != nil {
			return fmt.Errorf("ca: remove SVID record %s: %w", kv.Key, err)
		}
	}
	return nil
}
