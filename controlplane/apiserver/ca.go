package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/ca"
)

// CAAuthority is the mesh CA as the API sees it; *ca.CA satisfies it.
type CAAuthority interface {
	Status(ctx context.Context) (*ca.Status, error)
	StartRotation(ctx context.Context, opts ca.RotationOptions) error
}

// Bounds of a rotation's durations: long enough for a push to reach every
// proxy, short enough that a forgotten rotation still ends.
const (
	minPropagation = time.Second
	maxPropagation = time.Hour
	minGrace       = 10 * time.Second
	maxGrace       = 7 * 24 * time.Hour
	maxRotateBody  = 4 << 10
)

// caStatus answers GET /api/v1/ca.
func (s *server) caStatus(w http.ResponseWriter, r *http.Request) {
	if s.CA == nil {
		writeError(w, http.StatusNotImplemented, "ca: this control plane does not expose its CA")
		return
	}
	st, err := s.CA.Status(r.Context())
	if err != nil {
		writeError(w, statusOf(err), "ca status: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, caStatusBody(st))
}

// rotateCA answers POST /api/v1/ca/rotate: it starts a root rotation and
// returns the status right after; the CLI follows it with GET /api/v1/ca.
func (s *server) rotateCA(w http.ResponseWriter, r *http.Request) {
	if s.CA == nil {
		writeError(w, http.StatusNotImplemented, "ca: this control plane does not expose its CA")
		return
	}
	opts, err := readRotateRequest(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "rotate request: "+err.Error())
		return
	}
	err = s.CA.StartRotation(r.Context(), opts)
	switch {
	case errors.Is(err, ca.ErrRotationInProgress), errors.Is(err, ca.ErrExternal):
		writeError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		writeError(w, statusOf(err), "start rotation: "+err.Error())
		return
	}
	if s.Audit != nil {
		entry := auditEntry(r, "ca.rotate")
		entry.Changes = []client.AuditItem{{Kind: "CA", Name: "root", Result: "rotation started"}}
		if err := s.Audit.Write(r.Context(), *entry); err != nil {
			s.Log.Warn("api: cannot record the rotation in the audit log", "err", err)
		}
	}
	st, err := s.CA.Status(r.Context())
	if err != nil {
		writeError(w, statusOf(err), "rotation started, but its status cannot be read: "+err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, caStatusBody(st))
}

func readRotateRequest(w http.ResponseWriter, r *http.Request) (ca.RotationOptions, error) {
	var req client.CARotateRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRotateBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		return ca.RotationOptions{}, fmt.Errorf("invalid JSON: %w", err)
	}
	var opts ca.RotationOptions
	var err error
	if opts.Propagation, err = boundedDuration("propagation", req.Propagation, minPropagation, maxPropagation); err != nil {
		return opts, err
	}
	if opts.Grace, err = boundedDuration("grace", req.Grace, minGrace, maxGrace); err != nil {
		return opts, err
	}
	return opts, nil
}

// boundedDuration parses an optional duration; zero means the default.
func boundedDuration(field, v string, lo, hi time.Duration) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration such as \"30s\"", field, v)
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("%s: %s is outside [%s, %s]", field, v, lo, hi)
	}
	return d, nil
}

func caStatusBody(st *ca.Status) client.CAStatus {
	out := client.CAStatus{TrustDomain: st.TrustDomain, Mode: st.Mode, OtherSVIDs: st.OtherSVIDs, Warnings: st.Warnings}
	for _, c := range st.Roots {
		out.Roots = append(out.Roots, caCertificate(c))
	}
	for _, c := range st.Intermediates {
		out.Intermediates = append(out.Intermediates, caCertificate(c))
	}
	if r := st.Rotation; r != nil {
		out.Rotation = &client.CARotation{
			ID: r.ID, Phase: r.Phase, Started: r.Started, PhaseSince: r.PhaseSince, NextStepBy: r.NextStepBy,
			Completed: r.Completed, Propagation: r.Propagation.String(), Grace: r.Grace.String(),
			OldRoot: r.OldRoot, NewRoot: r.NewRoot, Outcome: r.Outcome,
			Workloads: r.Workloads, Reissued: r.Reissued, Pending: r.Pending,
		}
	}
	return out
}

func caCertificate(c ca.Certificate) client.CACertificate {
	return client.CACertificate{
		Subject: c.Subject, Issuer: c.Issuer, SHA256: c.SHA256, NotBefore: c.NotBefore, NotAfter: c.NotAfter,
		Signing: c.Signing, SVIDs: c.SVIDs,
	}
}

var _ CAAuthority = (*ca.CA)(nil)
