package ca

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// Warn about a CA certificate once less than a third of its lifetime, or
// less than expiryWarningFloor, is left: a root needs a rotation well before
// it expires, since proxies only rotate at their SVIDs' half-life.
const expiryWarningFloor = 30 * 24 * time.Hour

// caFileReminder is how long after a rotation the status reminds the
// operator to hand proxies the new ca.crt.
const caFileReminder = 7 * 24 * time.Hour

// maxPendingListed bounds the workloads a status names one by one.
const maxPendingListed = 20

// Certificate describes one certificate of the CA.
type Certificate struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	SHA256    string    `json:"sha256"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// Signing says this certificate's key signs new SVIDs.
	Signing bool `json:"signing,omitempty"`
	// SVIDs counts the unexpired SVIDs on record that it signed.
	SVIDs int `json:"svids"`
}

// Rotation describes the current or last root rotation.
type Rotation struct {
	ID         string    `json:"id"`
	Phase      string    `json:"phase"`
	Started    time.Time `json:"started"`
	PhaseSince time.Time `json:"phaseSince"`
	// NextStepBy is when the phase ends at the latest (propagation or grace).
	NextStepBy  time.Time     `json:"nextStepBy,omitzero"`
	Completed   time.Time     `json:"completed,omitzero"`
	Propagation time.Duration `json:"propagation"`
	Grace       time.Duration `json:"grace"`
	OldRoot     string        `json:"oldRoot"`
	NewRoot     string        `json:"newRoot"`
	Outcome     string        `json:"outcome,omitempty"`
	// Workloads registered now (at completion, for a completed rotation),
	// and how many of them hold an SVID of the new root.
	Workloads int      `json:"workloads"`
	Reissued  int      `json:"reissued"`
	Pending   []string `json:"pending,omitempty"`
}

// Status is what `weft ca status` shows.
type Status struct {
	TrustDomain string `json:"trustDomain"`
	// Mode is "managed" (the root kept in the store) or "external".
	Mode string `json:"mode"`
	// Roots is the trust bundle, the root that signs now (or that the
	// external CA chains to) first.
	Roots []Certificate `json:"roots"`
	// Intermediates are the CA certificates between the SVIDs and a root:
	// the external intermediate, or the cross-signed new root in a rotation.
	Intermediates []Certificate `json:"intermediates,omitempty"`
	Rotation      *Rotation     `json:"rotation,omitempty"`
	// OtherSVIDs counts unexpired SVIDs on record signed by a certificate
	// that is no longer part of the CA (a retired root).
	OtherSVIDs int      `json:"otherSVIDs,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
}

// Status reports the CA's certificates, the rotation in progress or last
// completed, and what an operator should act on.
func (c *CA) Status(ctx context.Context) (*Status, error) {
	now := time.Now()
	a := c.current.Load()
	st := c.state.Load()
	p, err := c.progress(ctx, st, now)
	if err != nil {
		return nil, err
	}
	s := &Status{TrustDomain: c.trustDomain, Mode: "managed"}
	if c.external != nil {
		s.Mode = "external"
	}
	counted := map[string]bool{}
	describe := func(cert *x509.Certificate) Certificate {
		fp := fingerprint(cert)
		counted[fp] = true
		return Certificate{
			Subject: cert.Subject.String(), Issuer: cert.Issuer.String(), SHA256: fp, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
			Signing: cert.Equal(a.cert), SVIDs: p.bySigner[fp],
		}
	}
	for _, r := range a.bundle {
		s.Roots = append(s.Roots, describe(r))
	}
	if !slices.ContainsFunc(a.bundle, a.cert.Equal) {
		s.Intermediates = append(s.Intermediates, describe(a.cert))
	}
	for _, der := range append(a.intermediates, a.servingExtra...) {
		if cert, err := x509.ParseCertificate(der); err == nil && !cert.Equal(a.cert) {
			info := describe(cert)
			info.Signing = false
			s.Intermediates = append(s.Intermediates, info)
		}
	}
	for fp, n := range p.bySigner {
		if !counted[fp] {
			s.OtherSVIDs += n
		}
	}
	if st != nil && st.rot != nil {
		s.Rotation = describeRotation(st.rot, p)
	}
	s.Warnings = append(c.certWarnings(now), s.rotationWarnings(now)...)
	return s, nil
}

func describeRotation(r *rotation, p progress) *Rotation {
	rec := r.rec
	out := &Rotation{
		ID: rec.ID, Phase: rec.Phase, Started: rec.Started, PhaseSince: rec.PhaseSince, Completed: rec.Completed,
		Propagation: rec.Propagation, Grace: rec.Grace, Outcome: rec.Outcome,
		OldRoot: fingerprint(r.oldCert), NewRoot: fingerprint(r.newCert),
		Workloads: p.workloads, Reissued: p.reissued,
	}
	switch rec.Phase {
	case PhaseTrust:
		out.NextStepBy = rec.PhaseSince.Add(rec.Propagation)
	case PhaseReissue:
		out.NextStepBy = rec.PhaseSince.Add(rec.Grace)
		out.Pending = p.pending[:min(len(p.pending), maxPendingListed)]
	case PhaseComplete:
		out.Workloads, out.Reissued = rec.Workloads, rec.Reissued
	}
	return out
}

// certWarnings names each CA certificate that expired or is near its end.
func (c *CA) certWarnings(now time.Time) []string {
	a := c.current.Load()
	action := "run `weft ca rotate`"
	if c.external != nil {
		action = "restart the control plane with a new --ca-cert and --ca-key"
	}
	var out []string
	seen := map[string]bool{}
	check := func(role string, cert *x509.Certificate) {
		fp := fingerprint(cert)
		if seen[fp] {
			return
		}
		seen[fp] = true
		left, life := cert.NotAfter.Sub(now), cert.NotAfter.Sub(cert.NotBefore)
		switch {
		case left <= 0:
			out = append(out, fmt.Sprintf("%s %q expired at %s: workloads that depend on it have lost their identity; %s",
				role, cert.Subject.CommonName, cert.NotAfter.UTC().Format(time.RFC3339), action))
		case left < life/3 || left < expiryWarningFloor:
			out = append(out, fmt.Sprintf("%s %q expires in %s (%s), with less than a third of its lifetime or 30 days left; %s",
				role, cert.Subject.CommonName, humanDuration(left), cert.NotAfter.UTC().Format(time.RFC3339), action))
		}
	}
	check("signing certificate", a.cert)
	for _, r := range a.bundle {
		check("root", r)
	}
	return out
}

// rotationWarnings says what a rotation leaves for the operator to do.
func (s *Status) rotationWarnings(now time.Time) []string {
	var out []string
	r := s.Rotation
	if r != nil && r.Phase == PhaseReissue && len(r.Pending) > 0 && now.After(r.PhaseSince.Add(time.Minute)) {
		out = append(out, fmt.Sprintf("%d workload(s) still hold an SVID of the old root after %s; the old root is retired at %s regardless",
			r.Workloads-r.Reissued, humanDuration(now.Sub(r.PhaseSince)), r.NextStepBy.UTC().Format(time.RFC3339)))
	}
	if s.OtherSVIDs > 0 {
		out = append(out, fmt.Sprintf("%d unexpired SVID(s) on record were signed by a retired root; their workloads cannot reach peers until they re-join", s.OtherSVIDs))
	}
	if r != nil && r.Phase == PhaseComplete && now.Sub(r.Completed) < caFileReminder {
		out = append(out, "the root changed: give proxies the new <data-dir>/ca.crt as --ca-file (until then they reach the control plane through the cross-signed certificate)")
	}
	return out
}

// humanDuration rounds d to what an operator reads at a glance.
func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return d.Round(time.Hour).String()
	case d >= time.Minute:
		return d.Round(time.Minute).String()
	}
	return d.Round(time.Second).String()
}
