package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/audit"
	"github.com/weftmesh/weft/controlplane/token"
)

const (
	// defaultTokenTTL is a join token's lifetime when the request names none.
	defaultTokenTTL = 24 * time.Hour
	maxTokenBody    = 64 << 10
)

// dnsLabel is what service and namespace names must look like (RFC 1123 label).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// createToken issues a join token bound to one service and namespace.
func (s *server) createToken(w http.ResponseWriter, r *http.Request) {
	req, ttl, err := readTokenRequest(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "token request: body too large")
			return
		}
		writeError(w, http.StatusBadRequest, "token request: "+err.Error())
		return
	}
	if !s.allow(w, r, verbTokens, inNamespace(req.Namespace), fmt.Sprintf("create a join token for %s.%s", req.Service, req.Namespace)) {
		return
	}
	entry := auditEntry(r, client.AuditTokenCreate)
	tok, rec, err := s.Tokens.CreateRecorded(r.Context(), req.Service, req.Namespace, ttl,
		auditHook(s, entry, func(rec token.Record) ([]client.AuditItem, error) {
			return tokenItems(rec, "created", nil, tokenInfo(rec))
		}))
	if err != nil {
		writeError(w, statusOf(err), fmt.Sprintf("create token for %s.%s: %v", req.Service, req.Namespace, err))
		return
	}
	s.audited(r.Context(), entry)
	s.Log.Info("api: join token created", "id", rec.ID, "service", rec.Service, "namespace", rec.Namespace,
		"expires", rec.ExpiresAt, "by", caller(r).ID)
	writeJSON(w, http.StatusOK, client.TokenResponse{Token: tok, ID: rec.ID, ExpiresAt: rec.ExpiresAt})
}

func readTokenRequest(w http.ResponseWriter, r *http.Request) (client.TokenRequest, time.Duration, error) {
	var req client.TokenRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTokenBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return req, 0, errors.New(`body must be JSON such as {"service": "payments", "namespace": "default", "ttl": "24h"}`)
		}
		return req, 0, fmt.Errorf("invalid JSON: %w", err)
	}
	if req.Service == "" {
		return req, 0, errors.New("service: required")
	}
	if !dnsLabel.MatchString(req.Service) {
		return req, 0, fmt.Errorf("service: %q must be a DNS label (lower-case letters, digits and '-')", req.Service)
	}
	if req.Namespace == "" {
		req.Namespace = v1alpha1.DefaultNamespace
	}
	if !dnsLabel.MatchString(req.Namespace) {
		return req, 0, fmt.Errorf("namespace: %q must be a DNS label (lower-case letters, digits and '-')", req.Namespace)
	}
	ttl := defaultTokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			return req, 0, fmt.Errorf("ttl: %q is not a duration such as \"24h\"", req.TTL)
		}
		if d < token.MinTTL || d > token.MaxTTL {
			return req, 0, fmt.Errorf("ttl: %s is outside [%s, %s]", req.TTL, v1alpha1.FormatDuration(token.MinTTL), v1alpha1.FormatDuration(token.MaxTTL))
		}
		ttl = d
	}
	return req, ttl, nil
}

// listTokens answers GET /api/v1/tokens[?namespace=] with the join tokens
// that have not expired long ago, oldest first; a credential limited to
// namespaces sees only theirs.
func (s *server) listTokens(w http.ResponseWriter, r *http.Request) {
	ns := r.URL.Query().Get("namespace")
	if ns != "" && !s.allow(w, r, verbTokens, inNamespace(ns), fmt.Sprintf("list the join tokens of namespace %q", ns)) {
		return
	}
	recs, err := s.Tokens.List(r.Context())
	if err != nil {
		writeError(w, statusOf(err), "list join tokens: "+err.Error())
		return
	}
	c := caller(r)
	list := client.TokenList{Items: make([]client.TokenInfo, 0, len(recs))}
	for _, rec := range recs {
		if (ns == "" || rec.Namespace == ns) && denial(c, verbTokens, inNamespace(rec.Namespace)) == "" {
			list.Items = append(list.Items, tokenInfo(rec))
		}
	}
	writeJSON(w, http.StatusOK, list)
}

// revokeToken answers DELETE /api/v1/tokens/{id}: the token is refused from
// then on, by every replica.
func (s *server) revokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec, err := s.Tokens.Lookup(r.Context(), id)
	if err != nil {
		writeError(w, tokenStatus(err), "revoke join token: "+err.Error())
		return
	}
	if !s.allow(w, r, verbTokens, inNamespace(rec.Namespace), fmt.Sprintf("revoke join token %s of %s.%s", id, rec.Service, rec.Namespace)) {
		return
	}
	entry := auditEntry(r, client.AuditTokenRevoke)
	rec, err = s.Tokens.RevokeRecorded(r.Context(), id, auditHook(s, entry, func(rec token.Record) ([]client.AuditItem, error) {
		return tokenItems(rec, "revoked", tokenInfo(rec), nil)
	}))
	if err != nil {
		writeError(w, tokenStatus(err), "revoke join token: "+err.Error())
		return
	}
	s.audited(r.Context(), entry)
	s.Log.Info("api: join token revoked", "id", rec.ID, "service", rec.Service, "namespace", rec.Namespace, "by", caller(r).ID)
	writeJSON(w, http.StatusOK, tokenInfo(rec))
}

func tokenInfo(rec token.Record) client.TokenInfo {
	return client.TokenInfo{ID: rec.ID, Service: rec.Service, Namespace: rec.Namespace, IssuedAt: rec.IssuedAt, ExpiresAt: rec.ExpiresAt}
}

func tokenItems(rec token.Record, result string, before, after any) ([]client.AuditItem, error) {
	diff, err := audit.DiffValues(fmt.Sprintf("JoinToken %s/%s", rec.Namespace, rec.ID), before, after)
	if err != nil {
		return nil, err
	}
	return []client.AuditItem{{Kind: "JoinToken", Namespace: rec.Namespace, Name: rec.ID, Result: result, Diff: diff}}, nil
}

// tokenStatus maps an issuer error to an HTTP status: an unknown ID is 404,
// a malformed one 400.
func tokenStatus(err error) int {
	switch {
	case errors.Is(err, token.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, token.ErrBadID):
		return http.StatusBadRequest
	default:
		return statusOf(err)
	}
}
