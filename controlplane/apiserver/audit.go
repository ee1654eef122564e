package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/audit"
)

// defaultAuditLimit is how many entries GET /api/v1/audit returns when the
// request names no limit.
const defaultAuditLimit = 50

// listAudit answers GET /api/v1/audit[?limit=N] with the newest entries first.
func (s *server) listAudit(w http.ResponseWriter, r *http.Request) {
	if s.Audit == nil {
		writeError(w, http.StatusNotImplemented, "audit: this control plane keeps no audit log")
		return
	}
	limit := defaultAuditLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxListLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter limit: %q is not a number from 1 to %d", v, audit.MaxListLimit))
			return
		}
		limit = n
	}
	entries, err := s.Audit.List(r.Context(), limit)
	if err != nil {
		writeError(w, statusOf(err), "read the audit log: "+err.Error())
		return
	}
	redactAuditEntries(entries)
	writeJSON(w, http.StatusOK, client.AuditList{Items: entries})
}

// auditEntry starts the audit entry of a change the request makes.
func auditEntry(r *http.Request, action string) *client.AuditEntry {
	c := caller(r)
	return &client.AuditEntry{
		Action: action,
		Who:    client.AuditActor{CredentialID: c.ID, Name: c.Name, Role: string(c.Role), Remote: r.RemoteAddr},
	}
}

// auditHook returns the hook a store or issuer call commits with its
// change: it fills entry with the items the change touched and returns the
// operation that stores entry. It is nil when the server keeps no audit log.
func auditHook[T any](s *server, entry *client.AuditEntry, items func(T) ([]client.AuditItem, error)) func(T) (clientv3.Op, error) {
	if s.Audit == nil {
		return nil
	}
	return func(v T) (clientv3.Op, error) {
		its, err := items(v)
		if err != nil {
			return clientv3.Op{}, err
		}
		entry.Changes = its
		return s.Audit.Op(entry)
	}
}

// audited logs an entry its change committed, and prunes the log.
func (s *server) audited(ctx context.Context, entry *client.AuditEntry) {
	if s.Audit != nil && entry.ID != "" {
		s.Audit.Committed(context.WithoutCancel(ctx), *entry)
	}
}
