package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// CACertificate describes one certificate of the mesh CA.
type CACertificate struct {
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

// CARotation describes the current or last root rotation.
type CARotation struct {
	ID          string    `json:"id"`
	Phase       string    `json:"phase"` // trust, reissue or complete
	Started     time.Time `json:"started"`
	PhaseSince  time.Time `json:"phaseSince"`
	NextStepBy  time.Time `json:"nextStepBy,omitzero"`
	Completed   time.Time `json:"completed,omitzero"`
	Propagation string    `json:"propagation"`
	Grace       string    `json:"grace"`
	OldRoot     string    `json:"oldRoot"`
	NewRoot     string    `json:"newRoot"`
	Outcome     string    `json:"outcome,omitempty"`
	Workloads   int       `json:"workloads"`
	Reissued    int       `json:"reissued"`
	Pending     []string  `json:"pending,omitempty"`
}

// CAStatus is the body of GET /api/v1/ca.
type CAStatus struct {
	TrustDomain string `json:"trustDomain"`
	// Mode is "managed" (the mesh root kept in the store) or "external".
	Mode string `json:"mode"`
	// Roots is the trust bundle, the root that signs now first.
	Roots         []CACertificate `json:"roots"`
	Intermediates []CACertificate `json:"intermediates,omitempty"`
	Rotation      *CARotation     `json:"rotation,omitempty"`
	// OtherSVIDs counts unexpired SVIDs signed by a retired root.
	OtherSVIDs int      `json:"otherSVIDs,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
}

// CARotateRequest is the body of POST /api/v1/ca/rotate. Empty durations
// take the control plane's defaults.
type CARotateRequest struct {
	Propagation string `json:"propagation,omitempty"`
	Grace       string `json:"grace,omitempty"`
}

// CAStatus returns the mesh CA's certificates and rotation.
func (c *Client) CAStatus(ctx context.Context) (*CAStatus, error) {
	var s CAStatus
	if err := c.do(ctx, http.MethodGet, "/api/v1/ca", nil, "", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// RotateCA starts a root rotation and returns the status right after.
func (c *Client) RotateCA(ctx context.Context, propagation, grace time.Duration) (*CAStatus, error) {
	req := CARotateRequest{}
	if propagation > 0 {
		req.Propagation = propagation.String()
	}
	if grace > 0 {
		req.Grace = grace.String()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode rotate request: %w", err)
	}
	var s CAStatus
	if err := c.do(ctx, http.MethodPost, "/api/v1/ca/rotate", nil, "application/json", body, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
