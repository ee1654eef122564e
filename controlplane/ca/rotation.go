package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/controlplane/store"
)

// A root rotation is one record at keyRotation that moves through three
// phases, each step one etcd transaction conditioned on the record's
// revision, so that replicas following the same record never both take a
// step:
//
//	trust    the new root joins the bundle, the old one still signs; this
//	         lasts Propagation, for the bundle to reach every proxy (ROOTCA).
//	reissue  the new root signs, its SVIDs carrying a certificate of the new
//	         root signed by the old one (the cross certificate), so that a
//	         peer that still trusts only the old root accepts them too; the
//	         bundle lists the new root first, which makes every proxy
//	         re-issue its SVID at once. It ends when every registered
//	         workload holds an SVID of the new root, or after Grace.
//	complete the new root becomes the root (keyRoot) and the old one leaves
//	         the bundle; its key is gone from the store.
const (
	PhaseTrust    = "trust"
	PhaseReissue  = "reissue"
	PhaseComplete = "complete"
)

// keyRotation holds the current or last rotation.
const keyRotation = store.PrefixCA + "rotation"

// Defaults of RotationOptions.
const (
	DefaultPropagation = 30 * time.Second
	DefaultGrace       = 15 * time.Minute
	// advanceEvery is how often a replica checks whether a rotation in
	// progress can take its next step.
	advanceEvery = time.Second
)

// ErrExternal is returned for what only a CA kept in the store can do.
var ErrExternal = errors.New("ca: the control plane signs with an external CA (--ca-cert); rotate it by restarting with a new --ca-cert and --ca-key")

// ErrRotationInProgress is wrapped when a rotation is asked for while one runs.
var ErrRotationInProgress = errors.New("ca: a root rotation is already in progress")

// RotationOptions shape a rotation; zero values take the defaults.
type RotationOptions struct {
	// Propagation is how long the bundle holding both roots is given to
	// reach every proxy before the new root signs.
	Propagation time.Duration
	// Grace bounds the reissue phase: the old root is retired after it
	// even if some workload still holds an SVID of the old root.
	Grace time.Duration
}

func (o *RotationOptions) defaults() {
	if o.Propagation <= 0 {
		o.Propagation = DefaultPropagation
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
}

// rotationRecord is a rotation as stored at keyRotation.
type rotationRecord struct {
	ID          string        `json:"id"`
	Phase       string        `json:"phase"`
	Started     time.Time     `json:"started"`
	PhaseSince  time.Time     `json:"phaseSince"`
	Completed   time.Time     `json:"completed,omitzero"`
	Propagation time.Duration `json:"propagation"`
	Grace       time.Duration `json:"grace"`
	// New is the new root; its key is dropped once it becomes keyRoot.
	New rootRecord `json:"new"`
	// OldCertPEM is the root being replaced; its key stays at keyRoot until
	// the rotation completes, then is gone.
	OldCertPEM string `json:"old"`
	// CrossPEM certifies the new root's key under the old root.
	CrossPEM string `json:"cross"`
	// Outcome says why the old root was retired.
	Outcome   string `json:"outcome,omitempty"`
	Workloads int    `json:"workloads,omitempty"`
	Reissued  int    `json:"reissued,omitempty"`
}

// rotation is a decoded rotationRecord.
type rotation struct {
	rec     rotationRecord
	newCert *x509.Certificate
	newRoot *root // nil once complete
	oldCert *x509.Certificate
	cross   *x509.Certificate
}

func (r *rotation) inProgress() bool {
	return r.rec.Phase == PhaseTrust || r.rec.Phase == PhaseReissue
}

// caState is the CA's records in the store at one revision.
type caState struct {
	root    *root
	rootRev int64 // mod revision of keyRoot
	rot     *rotation
	rotRev  int64 // mod revision of keyRotation, 0 without one
	rev     int64 // the store's revision when read
}

// readState reads the root and the rotation record at one revision.
func readState(ctx context.Context, kv *clientv3.Client) (*caState, error) {
	resp, err := kv.Txn(ctx).Then(clientv3.OpGet(keyRoot), clientv3.OpGet(keyRotation)).Commit()
	if err != nil {
		return nil, fmt.Errorf("ca: read CA state: %w", err)
	}
	rootKVs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(rootKVs) == 0 {
		return nil, fmt.Errorf("ca: no root at %s", keyRoot)
	}
	st := &caState{rootRev: rootKVs[0].ModRevision, rev: resp.Header.Revision}
	if st.root, err = decodeRoot(rootKVs[0].Value); err != nil {
		return nil, err
	}
	if rotKVs := resp.Responses[1].GetResponseRange().GetKvs(); len(rotKVs) > 0 {
		st.rotRev = rotKVs[0].ModRevision
		if st.rot, err = decodeRotation(rotKVs[0].Value); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// authority is what the state says signs and is trusted.
func (st *caState) authority() *authority {
	r := st.rot
	switch {
	case r != nil && r.rec.Phase == PhaseTrust:
		return newAuthority(st.root.cert, st.root.key, []*x509.Certificate{st.root.cert, r.newCert})
	case r != nil && r.rec.Phase == PhaseReissue:
		a := newAuthority(r.newRoot.cert, r.newRoot.key, []*x509.Certificate{r.newCert, r.oldCert})
		a.intermediates = [][]byte{r.cross.Raw}
		return a
	}
	a := newAuthority(st.root.cert, st.root.key, []*x509.Certificate{st.root.cert})
	if r != nil && r.rec.Phase == PhaseComplete && r.newCert.Equal(st.root.cert) && time.Now().Before(r.cross.NotAfter) {
		a.servingExtra = [][]byte{r.cross.Raw}
	}
	return a
}

func decodeRotation(data []byte) (*rotation, error) {
	var rec rotationRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("ca: decode rotation at %s: %w", keyRotation, err)
	}
	r := &rotation{rec: rec}
	var err error
	if r.newCert, err = parseCertPEM(rec.New.CertPEM, "new root"); err != nil {
		return nil, err
	}
	if r.oldCert, err = parseCertPEM(rec.OldCertPEM, "old root"); err != nil {
		return nil, err
	}
	if r.cross, err = parseCertPEM(rec.CrossPEM, "cross certificate"); err != nil {
		return nil, err
	}
	switch rec.Phase {
	case PhaseTrust, PhaseReissue:
		data, err := json.Marshal(rec.New)
		if err != nil {
			return nil, fmt.Errorf("ca: rotation at %s: %w", keyRotation, err)
		}
		if r.newRoot, err = decodeRoot(data); err != nil {
			return nil, fmt.Errorf("ca: rotation's new root: %w", err)
		}
	case PhaseComplete:
	default:
		return nil, fmt.Errorf("ca: rotation at %s: unknown phase %q", keyRotation, rec.Phase)
	}
	return r, nil
}

func parseCertPEM(s, what string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("ca: rotation at %s: %s is not a PEM CERTIFICATE", keyRotation, what)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca: rotation at %s: %s: %w", keyRotation, what, err)
	}
	return c, nil
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// StartRotation begins a root rotation: a new root is made and joins the
// trust bundle. Every replica following the store (Run) takes it from there.
func (c *CA) StartRotation(ctx context.Context, opts RotationOptions) error {
	if c.external != nil {
		return ErrExternal
	}
	opts.defaults()
	st, err := readState(ctx, c.kv)
	if err != nil {
		return err
	}
	if st.rot != nil && st.rot.inProgress() {
		return fmt.Errorf("%w: %s is in phase %s since %s", ErrRotationInProgress,
			st.rot.rec.ID, st.rot.rec.Phase, st.rot.rec.PhaseSince.UTC().Format(time.RFC3339))
	}
	now := time.Now()
	fresh, err := newRoot(c.trustDomain, now, rootCommonName+" "+now.UTC().Format("2006-01-02T15:04:05Z"))
	if err != nil {
		return err
	}
	cross, err := crossSign(st.root, fresh.cert, now)
	if err != nil {
		return err
	}
	newRec, err := encodeRootRecord(fresh)
	if err != nil {
		return err
	}
	rec := rotationRecord{
		ID: "rotation-" + now.UTC().Format("20060102T150405Z"), Phase: PhaseTrust,
		Started: now, PhaseSince: now, Propagation: opts.Propagation, Grace: opts.Grace,
		New: newRec, OldCertPEM: certPEM(st.root.cert), CrossPEM: certPEM(cross),
	}
	ok, err := c.putRotation(ctx, st, rec)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: another request started one at the same time", ErrRotationInProgress)
	}
	c.log.Info("root rotation started: the new root joins the trust bundle", "rotation", rec.ID,
		"new_root_sha256", fingerprint(fresh.cert), "old_root_sha256", fingerprint(st.root.cert),
		"propagation", opts.Propagation.String(), "grace", opts.Grace.String())
	return c.reload(ctx)
}

// putRotation writes rec if neither the root nor the rotation record changed
// since st was read; ok is false when another replica got there first.
func (c *CA) putRotation(ctx context.Context, st *caState, rec rotationRecord, more ...clientv3.Op) (ok bool, err error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return false, fmt.Errorf("ca: encode rotation: %w", err)
	}
	resp, err := c.kv.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(keyRoot), "=", st.rootRev),
		clientv3.Compare(clientv3.ModRevision(keyRotation), "=", st.rotRev),
	).Then(append([]clientv3.Op{clientv3.OpPut(keyRotation, string(data))}, more...)...).Commit()
	if err != nil {
		return false, fmt.Errorf("ca: store rotation phase %s: %w", rec.Phase, err)
	}
	return resp.Succeeded, nil
}

// crossSign certifies next's key and subject under the root r, valid while
// both are.
func crossSign(r *root, next *x509.Certificate, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               next.Subject,
		NotBefore:             now.Add(-rootBackdate),
		NotAfter:              earliest(next.NotAfter, r.cert.NotAfter),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          next.SubjectKeyId,
		AuthorityKeyId:        r.cert.SubjectKeyId,
		URIs:                  next.URIs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.cert, next.PublicKey, r.key)
	if err != nil {
		return nil, fmt.Errorf("ca: cross-sign the new root: %w", err)
	}
	cross, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse the cross certificate: %w", err)
	}
	return cross, nil
}

// Run follows the CA's records in the store until ctx is done: it installs
// each phase of a rotation as soon as any replica stores it, and takes the
// next step of a rotation in progress when it is due. It returns nil when
// ctx is done; with an external CA it only waits for that.
func (c *CA) Run(ctx context.Context) error {
	if c.external != nil {
		<-ctx.Done()
		return nil
	}
	backoff := 100 * time.Millisecond
	for {
		err := c.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("ca: following the store failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// follow reloads the state, then watches it and ticks rotations along until
// the watch fails or ctx is done.
func (c *CA) follow(ctx context.Context) error {
	st, err := readState(ctx, c.kv)
	if err != nil {
		return err
	}
	c.install(st)
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	watch := c.kv.Watch(wctx, keyRoot, clientv3.WithRev(st.rev+1))
	rotWatch := c.kv.Watch(wctx, keyRotation, clientv3.WithRev(st.rev+1))
	tick := time.NewTicker(advanceEvery)
	defer tick.Stop()
	gc := time.NewTicker(recordGCEvery)
	defer gc.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case resp, ok := <-watch:
			if err := watchErr(resp, ok); err != nil {
				return err
			}
			if err := c.reload(ctx); err != nil {
				return err
			}
		case resp, ok := <-rotWatch:
			if err := watchErr(resp, ok); err != nil {
				return err
			}
			if err := c.reload(ctx); err != nil {
				return err
			}
		case <-tick.C:
			if err := c.advance(ctx); err != nil {
				c.log.Warn("ca: rotation step failed; retrying", "err", err)
			}
			// Keep the authority's time-bound parts (the cross
			// certificate's validity) current.
			c.install(c.state.Load())
		case <-gc.C:
			if err := c.collectRecords(ctx, time.Now()); err != nil {
				c.log.Warn("ca: removing expired SVID records failed", "err", err)
			}
		}
	}
}

func watchErr(resp clientv3.WatchResponse, ok bool) error {
	if !ok {
		return errors.New("ca: watch closed")
	}
	if err := resp.Err(); err != nil {
		return fmt.Errorf("ca: watch: %w", err)
	}
	return nil
}

// reload reads the state and installs it.
func (c *CA) reload(ctx context.Context) error {
	st, err := readState(ctx, c.kv)
	if err != nil {
		return err
	}
	c.install(st)
	return nil
}

// install makes st current and, when that changes what signs or what is
// trusted, swaps the authority and tells OnChange.
func (c *CA) install(st *caState) {
	if st == nil {
		return
	}
	// The API's StartRotation and Run both install what they read: never
	// let an older read replace a newer one.
	c.installMu.Lock()
	defer c.installMu.Unlock()
	prev := c.state.Load()
	if prev != nil && st.rev < prev.rev {
		return
	}
	c.state.Store(st)
	a := st.authority()
	if a.sameAs(c.current.Load()) {
		return
	}
	c.current.Store(a)
	c.generation.Add(1)
	attrs := []any{"signer_sha256", fingerprint(a.cert), "bundle", len(a.bundle)}
	if r := st.rot; r != nil && (prev == nil || prev.rot == nil || prev.rot.rec.Phase != r.rec.Phase || prev.rot.rec.ID != r.rec.ID) {
		attrs = append(attrs, "rotation", r.rec.ID, "phase", r.rec.Phase)
	}
	c.log.Info("CA changed", attrs...)
	if c.onChange != nil {
		c.onChange()
	}
}

// advance takes the next step of the rotation in progress, when it is due.
// Every replica tries; the transaction lets one through.
func (c *CA) advance(ctx context.Context) error {
	st := c.state.Load()
	if st == nil || st.rot == nil || !st.rot.inProgress() {
		return nil
	}
	now := time.Now()
	rec := st.rot.rec
	switch rec.Phase {
	case PhaseTrust:
		if now.Before(rec.PhaseSince.Add(rec.Propagation)) {
			return nil
		}
		rec.Phase, rec.PhaseSince = PhaseReissue, now
		ok, err := c.putRotation(ctx, st, rec)
		if err != nil {
			return err
		}
		if ok {
			c.log.Info("root rotation: the new root signs now; proxies re-issue their SVIDs", "rotation", rec.ID)
		}
	case PhaseReissue:
		p, err := c.progress(ctx, st, now)
		if err != nil {
			return err
		}
		graceOver := !now.Before(rec.PhaseSince.Add(rec.Grace))
		if len(p.pending) > 0 && !graceOver {
			return nil
		}
		rec.Outcome = "every registered workload holds an SVID of the new root"
		if len(p.pending) > 0 {
			rec.Outcome = fmt.Sprintf("grace of %s expired with %d workload(s) still on the old root", rec.Grace, len(p.pending))
		}
		rec.Phase, rec.PhaseSince, rec.Completed = PhaseComplete, now, now
		rec.Workloads, rec.Reissued = p.workloads, p.reissued
		newRoot := rec.New
		rec.New.KeyPEM = ""
		rootData, err := json.Marshal(newRoot)
		if err != nil {
			return fmt.Errorf("ca: encode the new root: %w", err)
		}
		ok, err := c.putRotation(ctx, st, rec, clientv3.OpPut(keyRoot, string(rootData)))
		if err != nil {
			return err
		}
		if ok {
			log := c.log.Info
			if len(p.pending) > 0 {
				log = c.log.Warn
			}
			log("root rotation complete: the old root is retired", "rotation", rec.ID, "outcome", rec.Outcome,
				"workloads", p.workloads, "reissued", p.reissued)
		}
	}
	// Whether this replica took the step or another one did first, read
	// where the store is now.
	return c.reload(ctx)
}

// encodeRootRecord is encodeRoot without the JSON around it.
func encodeRootRecord(r *root) (rootRecord, error) {
	data, err := encodeRoot(r)
	if err != nil {
		return rootRecord{}, err
	}
	var rec rootRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return rootRecord{}, fmt.Errorf("ca: encode root: %w", err)
	}
	return rec, nil
}
