package dashboard

import (
	"fmt"
	"net/http"
	"time"

	"github.com/weftmesh/weft/controlplane/ca"
)

// Certificate states, as the page colours them. A certificate is expiring
// once less than a third of its lifetime, or less than 30 days, is left:
// the rule of the CA's own warnings (`weft ca status`).
const (
	CertValid    = "valid"
	CertExpiring = "expiring"
	CertExpired  = "expired"
)

const expiringFloor = 30 * 24 * time.Hour

// Certificate is one CA certificate and how close it is to its end.
type Certificate struct {
	ca.Certificate
	State string `json:"state"`
	// Left is the share of its lifetime still ahead, 0..1.
	Left float64 `json:"left"`
}

// Rotation is the root rotation in progress or last completed, with its
// durations spelled out.
type Rotation struct {
	*ca.Rotation
	Propagation string `json:"propagation"`
	Grace       string `json:"grace"`
}

// Certs is GET /dashboard/api/certs.
type Certs struct {
	At            time.Time     `json:"at"`
	TrustDomain   string        `json:"trustDomain"`
	Mode          string        `json:"mode"`
	Roots         []Certificate `json:"roots"`
	Intermediates []Certificate `json:"intermediates"`
	Rotation      *Rotation     `json:"rotation,omitempty"`
	OtherSVIDs    int           `json:"otherSVIDs"`
	Warnings      []string      `json:"warnings"`
}

// certs answers GET /dashboard/api/certs.
func (d *Dashboard) certs(w http.ResponseWriter, r *http.Request) {
	if d.opts.CA == nil {
		writeError(w, http.StatusNotImplemented, "this control plane does not expose its CA")
		return
	}
	st, err := d.opts.CA.Status(r.Context())
	if err != nil {
		writeError(w, statusOf(err), fmt.Sprintf("ca status: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, certsOf(st, time.Now()))
}

func certsOf(st *ca.Status, now time.Time) Certs {
	out := Certs{At: now.UTC(), TrustDomain: st.TrustDomain, Mode: st.Mode, OtherSVIDs: st.OtherSVIDs,
		Roots: []Certificate{}, Intermediates: []Certificate{}, Warnings: append([]string{}, st.Warnings...)}
	for _, c := range st.Roots {
		out.Roots = append(out.Roots, certificate(c, now))
	}
	for _, c := range st.Intermediates {
		out.Intermediates = append(out.Intermediates, certificate(c, now))
	}
	if r := st.Rotation; r != nil {
		out.Rotation = &Rotation{Rotation: r, Propagation: r.Propagation.String(), Grace: r.Grace.String()}
	}
	return out
}

func certificate(c ca.Certificate, now time.Time) Certificate {
	out := Certificate{Certificate: c, State: CertValid}
	left, life := c.NotAfter.Sub(now), c.NotAfter.Sub(c.NotBefore)
	if life > 0 {
		out.Left = max(0, min(1, float64(left)/float64(life)))
	}
	switch {
	case left <= 0:
		out.State = CertExpired
	case left < life/3 || left < expiringFloor:
		out.State = CertExpiring
	}
	return out
}
