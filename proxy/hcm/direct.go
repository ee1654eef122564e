package hcm

import (
	"net/http"

	"github.com/weftmesh/weft/proxy/route"
)

// direct sends a route's direct_response: its response header edits, its
// status and its body. A reply of 400 or more is a refusal, logged with the
// host asked for (REGISTRY_ONLY egress refusals name it this way), and
// recorded with the reason its x-weft-error header gives, if any.
func (m *ConnectionManager) direct(ex *exchange, w http.ResponseWriter, r *http.Request, rt *route.Route[*Upstream]) int {
	d := rt.Direct
	h := w.Header()
	for _, e := range rt.ResponseEdits {
		e.Apply(h)
	}
	reason := "direct_response"
	if v := h.Get("X-Weft-Error"); v != "" {
		reason = v
	}
	ex.rec.Route, ex.rec.Reason = rt.Name, reason
	if d.Status >= http.StatusBadRequest {
		m.refusals.Log("request refused", "route", rt.Name, "status", d.Status, "reason", reason,
			"method", r.Method, "host", r.Host, "path", r.URL.Path)
	}
	if d.Body != "" && h.Get("Content-Type") == "" {
		h["Content-Type"] = textPlain
	}
	w.WriteHeader(d.Status)
	if d.Body != "" && r.Method != http.MethodHead {
		_, _ = w.Write([]byte(d.Body))
	}
	return d.Status
}
