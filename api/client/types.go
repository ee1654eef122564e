package client

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// The types below are the JSON bodies of the API server
// (controlplane/apiserver), which uses them too, so both sides agree.

// ApplyResult is what happened to one applied resource.
type ApplyResult struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Action is what the store did, such as "created", "configured" or "unchanged".
	Action string `json:"action"`
}

// ApplyResponse is the body of a successful POST /api/v1/apply.
type ApplyResponse struct {
	Results []ApplyResult `json:"results"`
}

// ObjectList is the body of a GET /api/v1/resources without a name.
type ObjectList struct {
	Items []*v1alpha1.Object `json:"items"`
}

// WorkloadList is the body of GET /api/v1/workloads; each item is a
// meshv1.Workload in protobuf's JSON mapping.
type WorkloadList struct {
	Items []json.RawMessage `json:"items"`
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Service   string `json:"service"`
	Namespace string `json:"namespace,omitempty"`
	// TTL is a Go duration string such as "24h"; empty means the server's default.
	TTL string `json:"ttl,omitempty"`
}

// TokenResponse is a new join token.
type TokenResponse struct {
	Token     string    `json:"token"`
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// VersionInfo is the body of GET /api/v1/version.
type VersionInfo struct {
	Version     string `json:"version"`
	TrustDomain string `json:"trustDomain,omitempty"`
}

// ErrorResponse is the body of every failed request.
type ErrorResponse struct {
	Error   string        `json:"error"`
	Details []ErrorDetail `json:"details,omitempty"`
}

// ErrorDetail is one problem with one document of an apply.
type ErrorDetail struct {
	// Document is the 1-based position of the document in its source, or 0
	// when the problem is not tied to one document.
	Document int `json:"document,omitempty"`
	// Ref names the resource, such as "Service default/payments", when known.
	Ref string `json:"ref,omitempty"`
	// Field is the path of the offending field, such as spec.ports[0].port.
	Field string `json:"field,omitempty"`
	// Line is the 1-based line in the source, or 0 when unknown.
	Line   int    `json:"line,omitempty"`
	Detail string `json:"detail"`
}

// String renders the detail without its source: "line 7: Service
// default/payments: spec.ports[0].port: must be ...".
func (d ErrorDetail) String() string {
	var b strings.Builder
	switch {
	case d.Line > 0:
		fmt.Fprintf(&b, "line %d: ", d.Line)
	case d.Document > 0:
		fmt.Fprintf(&b, "document %d: ", d.Document)
	}
	if d.Ref != "" {
		b.WriteString(d.Ref + ": ")
	}
	if d.Field != "" {
		b.WriteString(d.Field + ": ")
	}
	b.WriteString(d.Detail)
	return b.String()
}

// APIError is an error returned by the API server.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the server's error message.
	Message string
	// Details lists every problem found, for a rejected apply.
	Details []ErrorDetail
}

func (e *APIError) Error() string {
	if len(e.Details) == 0 {
		return e.Message
	}
	lines := make([]string, 0, len(e.Details)+1)
	lines = append(lines, e.Message)
	for _, d := range e.Details {
		lines = append(lines, "  "+d.String())
	}
	return strings.Join(lines, "\n")
}
