package hcm

import (
	"net/http"

	"github.com/weftmesh/weft/proxy/route"
)

// errRedirectHost is the reply to a request whose Host a redirect cannot name.
var errRedirectHost = localError{[]string{"invalid_redirect_host"}, "the Host header names no host to redirect to"}

// redirect answers with a route's redirect: its response header edits, the
// status and the Location of the same request on the new scheme and port.
func (m *ConnectionManager) redirect(ex *exchange, w http.ResponseWriter, r *http.Request, rt *route.Route[*Upstream]) int {
	h := w.Header()
	for _, e := range rt.ResponseEdits {
		e.Apply(h)
	}
	ex.rec.Route, ex.rec.Reason = rt.Name, "redirect"
	loc := rt.Redirect.Location(r)
	if loc == "" {
		return ex.localReply(w, http.StatusBadRequest, errRedirectHost)
	}
	h.Set("Location", loc)
	w.WriteHeader(rt.Redirect.Status)
	return rt.Redirect.Status
}
