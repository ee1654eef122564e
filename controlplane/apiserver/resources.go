package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/audit"
	"github.com/weftmesh/weft/controlplane/store"
)

// resourceRef is what a resources request names: a kind, and a namespace
// and name when the request is about one object.
type resourceRef struct {
	kind      v1alpha1.Kind
	namespace string
	name      string
}

// parseRef reads kind, namespace and name from the query. A namespaced kind
// with a name but no namespace is in "default"; a cluster-scoped kind has no namespace.
func parseRef(r *http.Request) (resourceRef, error) {
	q := r.URL.Query()
	name := q.Get("kind")
	if name == "" {
		return resourceRef{}, fmt.Errorf("query parameter kind is required; known kinds: %s", knownKinds())
	}
	kind, ok := v1alpha1.Lookup(name)
	if !ok {
		return resourceRef{}, fmt.Errorf("unknown kind %q; known kinds: %s", name, knownKinds())
	}
	ref := resourceRef{kind: kind, namespace: q.Get("namespace"), name: q.Get("name")}
	for _, p := range []struct{ param, value string }{{"namespace", ref.namespace}, {"name", ref.name}} {
		// The store keys resources by namespace/name: a '/' would name another key.
		if strings.Contains(p.value, "/") {
			return resourceRef{}, fmt.Errorf("query parameter %s: %q must not contain '/'", p.param, p.value)
		}
	}
	if !kind.Namespaced {
		ref.namespace = ""
	} else if ref.namespace == "" && ref.name != "" {
		ref.namespace = v1alpha1.DefaultNamespace
	}
	return ref, nil
}

func (ref resourceRef) String() string {
	if ref.namespace == "" {
		return fmt.Sprintf("%s %q", ref.kind.Name, ref.name)
	}
	return fmt.Sprintf("%s %q in namespace %q", ref.kind.Name, ref.name, ref.namespace)
}

func knownKinds() string {
	var names []string
	for _, k := range v1alpha1.Kinds() {
		names = append(names, k.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// getResources answers with one object when a name is given, else with a list.
func (s *server) getResources(w http.ResponseWriter, r *http.Request) {
	ref, err := parseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if ref.name == "" {
		items, err := s.Store.List(r.Context(), ref.kind.Name, ref.namespace)
		if err != nil {
			writeError(w, statusOf(err), fmt.Sprintf("list %s: %v", ref.kind.Plural, err))
			return
		}
		if items == nil {
			items = []*v1alpha1.Object{}
		}
		for _, o := range items {
			redactObject(o)
		}
		writeJSON(w, http.StatusOK, client.ObjectList{Items: items})
		return
	}
	obj, err := s.Store.Get(r.Context(), ref.kind.Name, ref.namespace, ref.name)
	if err != nil {
		writeError(w, statusOf(err), notFoundOr(ref, err))
		return
	}
	redactObject(obj)
	writeJSON(w, http.StatusOK, obj)
}

func (s *server) deleteResource(w http.ResponseWriter, r *http.Request) {
	ref, err := parseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if ref.name == "" {
		writeError(w, http.StatusBadRequest, "query parameter name is required: delete removes one resource")
		return
	}
	entry := auditEntry(r, client.AuditDelete)
	err = s.Store.DeleteRecorded(r.Context(), ref.kind.Name, ref.namespace, ref.name,
		auditHook(s, entry, func(before []byte) ([]client.AuditItem, error) {
			res := store.ApplyResult{Kind: ref.kind.Name, Namespace: ref.namespace, Name: ref.name}
			diff, err := audit.Diff(resultRef(res), redactStored(before), nil)
			if err != nil {
				return nil, err
			}
			return []client.AuditItem{{Kind: res.Kind, Namespace: res.Namespace, Name: res.Name, Result: "deleted", Diff: diff}}, nil
		}))
	if err != nil {
		writeError(w, statusOf(err), notFoundOr(ref, err))
		return
	}
	s.audited(r.Context(), entry)
	writeJSON(w, http.StatusOK, client.ApplyResult{
		Kind: ref.kind.Name, Namespace: ref.namespace, Name: ref.name, Action: "deleted",
	})
}

func notFoundOr(ref resourceRef, err error) string {
	if errors.Is(err, store.ErrNotFound) {
		return ref.String() + " not found"
	}
	return ref.String() + ": " + err.Error()
}

// statusOf maps a store or issuer error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
