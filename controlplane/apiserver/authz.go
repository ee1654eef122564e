package apiserver

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/token"
)

// verb is what a request does, as a 403 names it.
type verb string

const (
	verbRead        verb = "read"
	verbWrite       verb = "change"
	verbTokens      verb = "manage join tokens"
	verbCredentials verb = "manage API credentials"
	verbAudit       verb = "read the audit log"
	// verbAdmin is any other change: only the admin role may make it.
	verbAdmin verb = "call"
)

// scope is where a request acts: one namespace, every namespace (all), or
// cluster-scoped resources.
type scope struct {
	namespace string
	all       bool
	cluster   bool
}

var (
	everyNamespace = scope{all: true}
	clusterScope   = scope{cluster: true}
)

func inNamespace(ns string) scope { return scope{namespace: ns} }

func (sc scope) String() string {
	switch {
	case sc.cluster:
		return "cluster-scoped resources"
	case sc.all:
		return "every namespace"
	default:
		return fmt.Sprintf("namespace %q", sc.namespace)
	}
}

// denial says why c may not do v in sc; "" means it may. The roles are
// token.RoleAdmin, RoleEdit and RoleView.
func denial(c token.Credential, v verb, sc scope) string {
	if c.Role == token.RoleAdmin {
		return ""
	}
	switch v {
	case verbRead:
		if sc.cluster {
			return ""
		}
	case verbWrite:
		if c.Role != token.RoleEdit {
			return fmt.Sprintf("role %s is read-only", c.Role)
		}
		if sc.cluster {
			return "cluster-scoped kinds such as Mesh need the admin role"
		}
	case verbTokens:
		if c.Role != token.RoleEdit {
			return fmt.Sprintf("role %s cannot manage join tokens; edit or admin can", c.Role)
		}
	case verbAudit:
		if len(c.Namespaces) > 0 {
			return "the audit log spans every namespace: it needs a credential not limited to namespaces"
		}
		return ""
	default:
		return fmt.Sprintf("only the admin role may %s", v)
	}
	switch {
	case len(c.Namespaces) == 0:
		return ""
	case sc.all:
		return fmt.Sprintf("it is limited to namespaces %s; name one of them", strings.Join(c.Namespaces, ", "))
	case !c.InNamespace(sc.namespace):
		return fmt.Sprintf("namespace %q is outside its namespaces (%s)", sc.namespace, strings.Join(c.Namespaces, ", "))
	}
	return ""
}

// caller is the credential that authenticated the request.
func caller(r *http.Request) token.Credential {
	if c, ok := r.Context().Value(callerKey{}).(*token.Credential); ok {
		return *c
	}
	return token.Credential{}
}

// allow answers 403 and logs why, unless the caller may do v in sc; what
// describes the request for the message, such as `apply Service "web" in
// namespace "shop"`.
func (s *server) allow(w http.ResponseWriter, r *http.Request, v verb, sc scope, what string) bool {
	c := caller(r)
	reason := denial(c, v, sc)
	if reason == "" {
		return true
	}
	s.Log.Warn("api: request forbidden",
		"who", c.ID, "credential_name", c.Name, "role", string(c.Role), "namespaces", c.Namespaces,
		"method", r.Method, "path", r.URL.Path, "wants", string(v), "in", sc.String(), "reason", reason,
		"remote", r.RemoteAddr)
	writeError(w, http.StatusForbidden, fmt.Sprintf("credential %s (%q, %s) may not %s: %s",
		c.ID, c.Name, c.Scope(), what, reason))
	return false
}

// authorized checks what can be known from the method, path and query
// before a handler runs; handlers check again per object where the body
// says more (apply, a join token's namespace). A path this table does not
// know is read-only for reads across every namespace and admin-only for
// anything else, so a new endpoint is never open by omission.
func (s *server) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, sc, what, ok := requirement(r)
		if ok && !s.allow(w, r, v, sc, what) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requirement is what a request needs before its handler runs; ok is false
// when it needs nothing beyond a valid credential.
func requirement(r *http.Request) (v verb, sc scope, what string, ok bool) {
	path, get := r.URL.Path, r.Method == http.MethodGet
	q := r.URL.Query()
	switch {
	case path == "/api/v1/version":
		return "", scope{}, "", false
	case path == "/api/v1/resources":
		ref, err := parseRef(r)
		if err != nil {
			// The handler answers 400 and reveals nothing; a read-only
			// role is still told it may not delete.
			if !get && caller(r).Role == token.RoleView {
				return verbWrite, everyNamespace, "delete resources", true
			}
			return "", scope{}, "", false
		}
		sc = refScope(ref)
		if get {
			return verbRead, sc, "read " + describe(ref), true
		}
		return verbWrite, sc, "delete " + describe(ref), true
	case path == "/api/v1/workloads", path == "/api/v1/status/routes", path == "/api/v1/status/policies":
		sc = everyNamespace
		if ns := q.Get("namespace"); ns != "" {
			sc = inNamespace(ns)
		}
		return verbRead, sc, "read " + strings.TrimPrefix(path, "/api/v1/"), true
	case path == "/api/v1/apply":
		// Each object's namespace is checked once the body is decoded;
		// a read-only role is refused before the body is read.
		return verbWrite, clusterScope, "apply resources", r.Method == http.MethodPost && caller(r).Role == token.RoleView
	case path == "/api/v1/tokens", strings.HasPrefix(path, "/api/v1/tokens/"):
		// The namespace is in the body or the token's record.
		if caller(r).Role == token.RoleView {
			return verbTokens, everyNamespace, "manage join tokens", true
		}
		return "", scope{}, "", false
	case path == "/api/v1/credentials", strings.HasPrefix(path, "/api/v1/credentials/"):
		return verbCredentials, everyNamespace, "manage API credentials", true
	case path == "/api/v1/audit":
		return verbAudit, everyNamespace, "read the audit log", true
	case get:
		return verbRead, everyNamespace, "read " + path, true
	default:
		return verbAdmin, everyNamespace, r.Method + " " + path, true
	}
}

func refScope(ref resourceRef) scope {
	switch {
	case !ref.kind.Namespaced:
		return clusterScope
	case ref.namespace == "":
		return everyNamespace
	default:
		return inNamespace(ref.namespace)
	}
}

// describe names what a resources request is about: one object, or a kind.
func describe(ref resourceRef) string {
	if ref.name != "" {
		return ref.String()
	}
	return strings.ToLower(ref.kind.Plural)
}

// objectScope is where an object to apply lives.
func objectScope(o *v1alpha1.Object) scope {
	if k, ok := v1alpha1.Lookup(o.Kind); ok && !k.Namespaced {
		return clusterScope
	}
	return inNamespace(o.Metadata.Namespace)
}
