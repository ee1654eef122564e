// Package apiserver is the control plane's HTTPS API, which the weft CLI
// talks to: apply, get and delete resources, manage join tokens and API
// credentials, list workloads, read the audit log. Every request must carry
// an API credential as a bearer token (401 otherwise) whose role and
// namespaces allow what it asks (403 otherwise); every change is recorded in
// the audit log. Errors are JSON and map to HTTP statuses only here.
package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/audit"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/telemetry"
	"github.com/weftmesh/weft/controlplane/token"
)

// MaxApplyBytes bounds the body of an apply request.
const MaxApplyBytes = 1 << 20

// ResourceStore keeps resources; *store.Store satisfies it.
type ResourceStore interface {
	// Apply writes every object in one transaction.
	Apply(ctx context.Context, objs []*v1alpha1.Object) ([]store.ApplyResult, error)
	// ApplyRecorded is Apply, committing also's operation (the audit entry)
	// in the same transaction when something changes.
	ApplyRecorded(ctx context.Context, objs []*v1alpha1.Object, also func([]store.Change) (clientv3.Op, error)) ([]store.ApplyResult, error)
	// DeleteRecorded is Delete, committing also's operation in the same transaction.
	DeleteRecorded(ctx context.Context, kind, namespace, name string, also func(before []byte) (clientv3.Op, error)) error
	// Get returns one object, or an error wrapping store.ErrNotFound.
	Get(ctx context.Context, kind, namespace, name string) (*v1alpha1.Object, error)
	// List returns a kind's objects in namespace, or in all namespaces when it is empty.
	List(ctx context.Context, kind, namespace string) ([]*v1alpha1.Object, error)
	// Delete removes one object, or returns an error wrapping store.ErrNotFound.
	Delete(ctx context.Context, kind, namespace, name string) error
}

// WorkloadLister lists registered workloads; *store.Store satisfies it.
type WorkloadLister interface {
	// ListWorkloads filters by namespace and service when they are not empty.
	ListWorkloads(ctx context.Context, namespace, service string) ([]*meshv1.Workload, error)
}

// TokenManager issues, lists and revokes join tokens; *token.Issuer
// satisfies it. The Recorded methods commit also's operation (the audit
// entry) in the same transaction as the change.
type TokenManager interface {
	CreateRecorded(ctx context.Context, service, namespace string, ttl time.Duration, also func(token.Record) (clientv3.Op, error)) (string, token.Record, error)
	List(ctx context.Context) ([]token.Record, error)
	// Lookup and RevokeRecorded return errors wrapping token.ErrNotFound
	// for an unknown ID.
	Lookup(ctx context.Context, id string) (token.Record, error)
	RevokeRecorded(ctx context.Context, id string, also func(token.Record) (clientv3.Op, error)) (token.Record, error)
}

// CredentialAuthority checks and manages API credentials; *token.Issuer
// satisfies it.
type CredentialAuthority interface {
	// Authenticate returns what the credential may do. An error wrapping
	// token.ErrAdminInvalid means the credential is bad (401); any other
	// means it could not be checked (503).
	Authenticate(ctx context.Context, secret string) (token.Credential, error)
	CreateCredential(ctx context.Context, spec token.CredentialSpec, also func(token.Credential) (clientv3.Op, error)) (string, token.Credential, error)
	ListCredentials(ctx context.Context) ([]token.Credential, error)
	// RevokeCredential returns an error wrapping token.ErrNotFound for an
	// unknown ID.
	RevokeCredential(ctx context.Context, id string, also func(token.Credential) (clientv3.Op, error)) (token.Credential, error)
}

// Options are what the API server needs. All fields but Log, Version,
// Audit and RouteStatus are required.
type Options struct {
	Store     ResourceStore
	Workloads WorkloadLister
	Tokens    TokenManager
	Auth      CredentialAuthority
	// Audit, if set, records every change in the same transaction as the
	// change and serves GET /api/v1/audit; without it nothing is recorded.
	Audit *audit.Log
	// RouteStatus, if set, says how far Routes have reached the proxies;
	// without it, GET /api/v1/status/routes reports only whether each
	// Route is accepted.
	RouteStatus RouteStatusSource
	// PolicyStatus, if set, says how far destination policies have reached
	// the proxies; without it, GET /api/v1/status/policies reports only
	// whether each is accepted and what of it can never match.
	PolicyStatus PolicyStatusSource
	// Inputs, if set, is the configuration served now, for GET /api/v1/explain.
	Inputs InputSource
	// CA, if set, serves GET /api/v1/ca and POST /api/v1/ca/rotate (ca.go).
	CA CAAuthority
	// Telemetry, if set, serves GET /api/v1/stats and /api/v1/tap (telemetry.go).
	Telemetry telemetry.Source
	// TrustDomain is the control plane's; a Mesh resource may not name another.
	TrustDomain string
	// Version is reported by GET /api/v1/version.
	Version string
	// Log receives one line per API call; nil means slog.Default().
	Log *slog.Logger
}

type server struct {
	Options
}

// New returns the API's handler. Serve it over TLS: the bearer credential
// must never travel in plaintext.
func New(opts Options) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &server{Options: opts}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/apply", methods{http.MethodPost: s.apply})
	mux.Handle("/api/v1/resources", methods{http.MethodGet: s.getResources, http.MethodDelete: s.deleteResource})
	mux.Handle("/api/v1/tokens", methods{http.MethodPost: s.createToken, http.MethodGet: s.listTokens})
	mux.Handle("/api/v1/tokens/{id}", methods{http.MethodDelete: s.revokeToken})
	mux.Handle("/api/v1/credentials", methods{http.MethodPost: s.createCredential, http.MethodGet: s.listCredentials})
	mux.Handle("/api/v1/credentials/{id}", methods{http.MethodDelete: s.revokeCredential})
	mux.Handle("/api/v1/audit", methods{http.MethodGet: s.listAudit})
	mux.Handle("/api/v1/workloads", methods{http.MethodGet: s.listWorkloads})
	mux.Handle("/api/v1/version", methods{http.MethodGet: s.version})
	mux.Handle("/api/v1/status/routes", methods{http.MethodGet: s.routeStatuses})
	mux.Handle("/api/v1/status/policies", methods{http.MethodGet: s.policyStatuses})
	mux.Handle("/api/v1/explain", methods{http.MethodGet: s.explain})
	mux.Handle("/api/v1/ca", methods{http.MethodGet: s.caStatus})
	mux.Handle("/api/v1/ca/rotate", methods{http.MethodPost: s.rotateCA})
	mux.Handle("/api/v1/stats", methods{http.MethodGet: s.stats})
	mux.Handle("/api/v1/tap", methods{http.MethodGet: s.tap})
	mux.Handle("/api/v1/proxy-config", methods{http.MethodGet: s.proxyConfig})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no API at "+r.URL.Path)
	})
	return s.logged(s.authenticated(s.authorized(mux)))
}

func (s *server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, client.VersionInfo{Version: s.Version, TrustDomain: s.TrustDomain})
}

// methods routes a path by method and answers others with 405 and Allow.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, ok := m[r.Method]; ok {
		h(w, r)
		return
	}
	allowed := make([]string, 0, len(m))
	for _, name := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		if _, ok := m[name]; ok {
			allowed = append(allowed, name)
		}
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; use "+strings.Join(allowed, " or "))
}

type callerKey struct{}

// authenticated refuses every request without a valid API credential, and
// puts the credential in the request's context for authorized and the handlers.
func (s *server) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			s.Log.Warn("api: request refused", "reason", "no credential", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			unauthorized(w, "missing API credential: send it as \"Authorization: Bearer <credential>\"")
			return
		}
		cred, err := s.Auth.Authenticate(r.Context(), secret)
		if err != nil {
			if !errors.Is(err, token.ErrAdminInvalid) {
				s.Log.Error("api: cannot check an API credential", "remote", r.RemoteAddr, "err", err)
				writeError(w, http.StatusServiceUnavailable, "cannot check the API credential now; try again")
				return
			}
			// The reason (unknown, revoked, expired, wrong secret) goes to
			// the log, not to the caller.
			s.Log.Warn("api: request refused", "reason", err.Error(), "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			unauthorized(w, "invalid API credential")
			return
		}
		if c, ok := r.Context().Value(callerKey{}).(*token.Credential); ok {
			*c = cred
		}
		next.ServeHTTP(w, r)
	})
}

func bearer(header string) (string, bool) {
	scheme, secret, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	secret = strings.TrimSpace(secret)
	return secret, secret != ""
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
	writeError(w, http.StatusUnauthorized, msg)
}

// logged writes one line per call: who, what and how it ended.
func (s *server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var cred token.Credential
		r = r.WithContext(context.WithValue(r.Context(), callerKey{}, &cred))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		who := cred.ID
		if who == "" {
			who = "anonymous"
		}
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		s.Log.Log(r.Context(), level, "api call",
			"who", who, "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr, "credential_name", cred.Name)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(client.ErrorResponse{Error: "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, client.ErrorResponse{Error: msg})
}

// The control plane's concrete types satisfy the interfaces above.
var (
	_ ResourceStore       = (*store.Store)(nil)
	_ WorkloadLister      = (*store.Store)(nil)
	_ TokenManager        = (*token.Issuer)(nil)
	_ CredentialAuthority = (*token.Issuer)(nil)
)
