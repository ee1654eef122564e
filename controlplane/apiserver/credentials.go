package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/audit"
	"github.com/weftmesh/weft/controlplane/token"
)

const maxCredentialBody = 64 << 10

// createCredential answers POST /api/v1/credentials with a new API
// credential; its secret is in this response and nowhere else.
func (s *server) createCredential(w http.ResponseWriter, r *http.Request) {
	spec, err := readCredentialRequest(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "credential request: body too large")
			return
		}
		writeError(w, http.StatusBadRequest, "credential request: "+err.Error())
		return
	}
	entry := auditEntry(r, client.AuditCredentialCreate)
	secret, cred, err := s.Auth.CreateCredential(r.Context(), spec, auditHook(s, entry, func(c token.Credential) ([]client.AuditItem, error) {
		return credentialItems(c, "created", nil, credentialInfo(c))
	}))
	if err != nil {
		writeError(w, statusOf(err), "create credential: "+err.Error())
		return
	}
	s.audited(r.Context(), entry)
	s.Log.Info("api: credential created", "id", cred.ID, "name", cred.Name, "role", string(cred.Role),
		"namespaces", cred.Namespaces, "by", caller(r).ID)
	writeJSON(w, http.StatusOK, client.CredentialResponse{CredentialInfo: credentialInfo(cred), Credential: secret})
}

func readCredentialRequest(w http.ResponseWriter, r *http.Request) (token.CredentialSpec, error) {
	var req client.CredentialRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCredentialBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return token.CredentialSpec{}, errors.New(`body must be JSON such as {"name": "ci", "role": "edit", "namespaces": ["shop"], "ttl": "720h"}`)
		}
		return token.CredentialSpec{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if req.Name == "" {
		return token.CredentialSpec{}, errors.New("name: required (who or what holds the credential)")
	}
	role, err := token.ParseRole(req.Role)
	if err != nil {
		return token.CredentialSpec{}, err
	}
	spec := token.CredentialSpec{Name: req.Name, Role: role, Namespaces: req.Namespaces}
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return token.CredentialSpec{}, fmt.Errorf("ttl: %q is not a positive duration such as \"720h\"", req.TTL)
		}
		spec.TTL = d
	}
	if err := spec.Validate(); err != nil {
		return token.CredentialSpec{}, err
	}
	return spec, nil
}

// listCredentials answers GET /api/v1/credentials, oldest first.
func (s *server) listCredentials(w http.ResponseWriter, r *http.Request) {
	creds, err := s.Auth.ListCredentials(r.Context())
	if err != nil {
		writeError(w, statusOf(err), "list credentials: "+err.Error())
		return
	}
	list := client.CredentialList{Items: make([]client.CredentialInfo, 0, len(creds))}
	for _, c := range creds {
		list.Items = append(list.Items, credentialInfo(c))
	}
	writeJSON(w, http.StatusOK, list)
}

// revokeCredential answers DELETE /api/v1/credentials/{id}. A credential
// cannot revoke itself: that would lock its holder out by mistake.
func (s *server) revokeCredential(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == caller(r).ID {
		writeError(w, http.StatusConflict, fmt.Sprintf("credential %s is the one making this request; revoke it with another admin credential", id))
		return
	}
	entry := auditEntry(r, client.AuditCredentialRevoke)
	cred, err := s.Auth.RevokeCredential(r.Context(), id, auditHook(s, entry, func(c token.Credential) ([]client.AuditItem, error) {
		return credentialItems(c, "revoked", credentialInfo(c), nil)
	}))
	if err != nil {
		writeError(w, tokenStatus(err), "revoke credential: "+err.Error())
		return
	}
	s.audited(r.Context(), entry)
	s.Log.Info("api: credential revoked", "id", cred.ID, "name", cred.Name, "by", caller(r).ID)
	writeJSON(w, http.StatusOK, credentialInfo(cred))
}

func credentialInfo(c token.Credential) client.CredentialInfo {
	return client.CredentialInfo{
		ID: c.ID, Name: c.Name, Role: string(c.Role), Namespaces: c.Namespaces,
		CreatedAt: c.CreatedAt, ExpiresAt: c.ExpiresAt,
	}
}

func credentialItems(c token.Credential, result string, before, after any) ([]client.AuditItem, error) {
	diff, err := audit.DiffValues("Credential "+c.ID, before, after)
	if err != nil {
		return nil, err
	}
	return []client.AuditItem{{Kind: "Credential", Name: c.ID, Result: result, Diff: diff}}, nil
}
