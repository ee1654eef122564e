package apiserver

import (
	"errors"
	"net/http"
	"strings"

	"github.com/weftmesh/weft/controlplane/explain"
	"github.com/weftmesh/weft/controlplane/translate"
)

// InputSource gives the configuration the proxies are served now;
// *xds.Server satisfies it.
type InputSource interface {
	Input() *translate.Input
}

// explain answers GET /api/v1/explain?from=&to=[&method=][&path=][&header=k=v]...:
// what the mesh would do with that request now (controlplane/explain).
func (s *server) explain(w http.ResponseWriter, r *http.Request) {
	if s.Inputs == nil {
		writeError(w, http.StatusNotImplemented, "explain: this control plane serves no xDS")
		return
	}
	q := r.URL.Query()
	var req explain.Request
	var err error
	if req.From, err = serviceParam(q.Get("from"), "from"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.To, err = serviceParam(q.Get("to"), "to"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	req.Method, req.Path = q.Get("method"), q.Get("path")
	for _, kv := range q["header"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			writeError(w, http.StatusBadRequest, "header "+kv+": want NAME=VALUE")
			return
		}
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.Header.Add(k, v)
	}
	e, err := explain.Explain(s.Inputs.Input(), req)
	switch {
	case errors.Is(err, explain.ErrUnknownService):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusOK, e)
	}
}

// serviceParam reads "name" or "name.namespace" (namespace "default").
func serviceParam(v, param string) (translate.ServiceKey, error) {
	if v == "" {
		return translate.ServiceKey{}, errors.New(param + ": a service is required (name or name.namespace)")
	}
	name, ns, ok := strings.Cut(v, ".")
	if !ok {
		ns = "default"
	}
	if name == "" || ns == "" || strings.Contains(ns, ".") {
		return translate.ServiceKey{}, errors.New(param + " " + v + ": want name or name.namespace")
	}
	return translate.ServiceKey{Namespace: ns, Name: name}, nil
}
