// Package spiffe formats and parses the mesh's SPIFFE IDs:
// spiffe://<trust-domain>/ns/<namespace>/sa/<service>.
package spiffe

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The control plane's own identity is spiffe://<td>/ns/weft-system/sa/weft-control.
const (
	ControlPlaneNamespace = "weft-system"
	ControlPlaneService   = "weft-control"
)

// ID is a workload identity in the mesh.
type ID struct {
	TrustDomain string
	Namespace   string
	Service     string
}

// String returns the URI form of the ID.
func (id ID) String() string {
	return "spiffe://" + id.TrustDomain + "/ns/" + id.Namespace + "/sa/" + id.Service
}

// IsControlPlane reports whether id is the control plane's identity.
func (id ID) IsControlPlane() bool {
	return id.Namespace == ControlPlaneNamespace && id.Service == ControlPlaneService
}

// URL returns the ID as a URL, as it goes into a certificate's URI SAN.
func (id ID) URL() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.TrustDomain, Path: "/ns/" + id.Namespace + "/sa/" + id.Service}
}

// Parse reads a SPIFFE ID of the mesh's shape.
func Parse(s string) (ID, error) {
	u, err := url.Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("spiffe: parse %q: %w", s, err)
	}
	if u.Scheme != "spiffe" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return ID{}, fmt.Errorf("spiffe: %q is not a spiffe://<trust-domain>/... URI", s)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" || parts[1] == "" || parts[3] == "" {
		return ID{}, fmt.Errorf("spiffe: %q is not of the form spiffe://<td>/ns/<namespace>/sa/<service>", s)
	}
	return ID{TrustDomain: u.Host, Namespace: parts[1], Service: parts[3]}, nil
}

// ErrNoID is returned when a certificate carries no SPIFFE URI SAN.
var ErrNoID = errors.New("spiffe: certificate has no spiffe:// URI SAN")

// FromCert returns the single SPIFFE ID in a certificate's URI SANs.
func FromCert(cert *x509.Certificate) (ID, error) {
	var found []string
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" {
			found = append(found, u.String())
		}
	}
	switch len(found) {
	case 0:
		return ID{}, ErrNoID
	case 1:
		return Parse(found[0])
	default:
		return ID{}, fmt.Errorf("spiffe: certificate has %d spiffe:// URI SANs, want exactly one", len(found))
	}
}
