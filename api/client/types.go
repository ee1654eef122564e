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

// TokenInfo describes a join token without the token itself: the body of
// GET /api/v1/tokens lists them.
type TokenInfo struct {
	ID        string    `json:"id"`
	Service   string    `json:"service"`
	Namespace string    `json:"namespace"`
	IssuedAt  time.Time `json:"issuedAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// TokenList is the body of GET /api/v1/tokens.
type TokenList struct {
	Items []TokenInfo `json:"items"`
}

// CredentialRequest is the body of POST /api/v1/credentials.
type CredentialRequest struct {
	// Name says who or what holds the credential, for audit logs.
	Name string `json:"name"`
	// Role is admin, edit or view.
	Role string `json:"role"`
	// Namespaces limits an edit or view credential; empty means all.
	Namespaces []string `json:"namespaces,omitempty"`
	// TTL is a Go duration string such as "720h"; empty means no expiry.
	TTL string `json:"ttl,omitempty"`
}

// CredentialInfo describes an API credential without its secret.
type CredentialInfo struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	Namespaces []string  `json:"namespaces,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	ExpiresAt  time.Time `json:"expiresAt,omitzero"`
}

// CredentialResponse is a new API credential: the secret is shown once.
type CredentialResponse struct {
	CredentialInfo
	Credential string `json:"credential"`
}

// CredentialList is the body of GET /api/v1/credentials.
type CredentialList struct {
	Items []CredentialInfo `json:"items"`
}

// Audit actions: what an audit entry records.
const (
	AuditApply            = "apply"
	AuditDelete           = "delete"
	AuditTokenCreate      = "token.create"
	AuditTokenRevoke      = "token.revoke"
	AuditCredentialCreate = "credential.create"
	AuditCredentialRevoke = "credential.revoke"
)

// AuditEntry is one change made through the API: who made it, when, and
// what changed, with a unified diff of each object's YAML.
type AuditEntry struct {
	// ID orders entries by time across replicas.
	ID      string      `json:"id"`
	Time    time.Time   `json:"time"`
	Who     AuditActor  `json:"who"`
	Action  string      `json:"action"`
	Changes []AuditItem `json:"changes"`
}

// AuditActor is the API credential that made a change.
type AuditActor struct {
	CredentialID string `json:"credentialID"`
	Name         string `json:"name"`
	Role         string `json:"role"`
	Remote       string `json:"remote,omitempty"`
}

// AuditItem is one object an audited change touched.
type AuditItem struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Result is what happened to it: created, configured, deleted, revoked.
	Result string `json:"result"`
	// Diff is a unified diff of the object's YAML, before and after.
	Diff string `json:"diff,omitempty"`
}

// AuditList is the body of GET /api/v1/audit, newest first.
type AuditList struct {
	Items []AuditEntry `json:"items"`
}
