// Package apiserver is the control plane's HTTPS API, which the weft CLI
// talks to: apply, get and delete resources, create join tokens, list
// workloads. Every request must carry the admin credential as a bearer
// token; errors are JSON and map to HTTP statuses only here.
package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/token"
)

// MaxApplyBytes bounds the body of an apply request.
const MaxApplyBytes = 1 << 20

// ResourceStore keeps resources; *store.Store satisfies it.
type ResourceStore interface {
	// Apply writes every object in one transaction.
	Apply(ctx context.Context, objs []*v1alpha1.Object) ([]store.ApplyResult, error)
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

// TokenCreator issues join tokens; *token.Issuer satisfies it.
type TokenCreator interface {
	Create(ctx context.Context, service, namespace string, ttl time.Duration) (string, token.Record, error)
}

// AdminAuthenticator checks the admin credential; *token.Issuer satisfies it.
type AdminAuthenticator interface {
	// VerifyAdmin returns the credential's ID. An error wrapping
	// token.ErrAdminInvalid means the credential is bad (401); any other
	// means it could not be checked (503).
	VerifyAdmin(ctx context.Context, secret string) (id string, err error)
}

// Options are what the API server needs. All fields but Log, Version and
// RouteStatus are required.
type Options struct {
	Store     ResourceStore
	Workloads WorkloadLister
	Tokens    TokenCreator
	Auth      AdminAuthenticator
	// RouteStatus, if set, says how far Routes have reached the proxies;
	// without it, GET /api/v1/status/routes reports only whether each
	// Route is accepted.
	RouteStatus RouteStatusSource
	// Inputs, if set, is the configuration served now, for GET /api/v1/explain.
	Inputs InputSource
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
	mux.Handle("/api/v1/tokens", methods{http.MethodPost: s.createToken})
	mux.Handle("/api/v1/workloads", methods{http.MethodGet: s.listWorkloads})
	mux.Handle("/api/v1/version", methods{http.MethodGet: s.version})
	mux.Handle("/api/v1/status/routes", methods{http.MethodGet: s.routeStatuses})
	mux.Handle("/api/v1/explain", methods{http.MethodGet: s.explain})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no API at "+r.URL.Path)
	})
	return s.logged(s.authenticated(mux))
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

// authenticated refuses every request without a valid admin credential.
func (s *server) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			unauthorized(w, "missing admin credential: send it as \"Authorization: Bearer <token>\"")
			return
		}
		id, err := s.Auth.VerifyAdmin(r.Context(), secret)
		if err != nil {
			if !errors.Is(err, token.ErrAdminInvalid) {
				s.Log.Error("api: cannot check an admin credential", "remote", r.RemoteAddr, "err", err)
				writeError(w, http.StatusServiceUnavailable, "cannot check the admin credential now; try again")
				return
			}
			// The reason (unknown, revoked, wrong secret) goes to the log, not to the caller.
			s.Log.Warn("api: admin credential refused", "remote", r.RemoteAddr, "err", err)
			unauthorized(w, "invalid admin credential")
			return
		}
		if c, ok := r.Context().Value(callerKey{}).(*string); ok {
			*c = id
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
		who := ""
		r = r.WithContext(context.WithValue(r.Context(), callerKey{}, &who))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if who == "" {
			who = "anonymous"
		}
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		s.Log.Log(r.Context(), level, "api call",
			"who", who, "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
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
	_ ResourceStore      = (*store.Store)(nil)
	_ WorkloadLister     = (*store.Store)(nil)
	_ TokenCreator       = (*token.Issuer)(nil)
	_ AdminAuthenticator = (*token.Issuer)(nil)
)
