package hcm

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/proxy/filter"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/route"
)

// Filter is one HTTP filter of the connection manager, before its router.
type Filter struct {
	// Name is the filter's name in http_filters: a route's
	// typed_per_filter_config for it uses the same key.
	Name   string
	Filter filter.HTTP
}

// runFilters runs the filter chain on a request's headers. It returns
// whether the request goes on; when it does not, the reply has been sent
// and code is its status. A refusal (a reply of 400 or more) is logged with
// the filter's reason, so that denied requests can be traced; a flood of
// them is thinned to a few lines a second that count what they skip.
func (m *ConnectionManager) runFilters(ex *exchange, w http.ResponseWriter, r *http.Request, rt *route.Route[*Upstream]) (code int, next bool) {
	s := filter.Stream{TLS: r.TLS, Route: rt.Name}
	for i := range m.cfg.Filters {
		f := &m.cfg.Filters[i]
		d := f.Filter.DecodeHeaders(r, &s, rt.PerFilter[f.Name])
		if d.Delay > 0 {
			ex.rec.Flags |= observe.FaultInjected
			t := time.NewTimer(d.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				ex.rec.Flags |= observe.DownstreamClosed
				return statusClientClosed, false
			}
		}
		if d.Reply != nil {
			ex.rec.Flags |= refusalFlags(f.Name, d.Reply.Status)
			ex.rec.Reason = d.Reply.Reason
			if d.Reply.Status >= 400 || d.Reply.GRPCStatus != nil {
				m.refusals.Log("request refused", "filter", f.Name, "status", d.Reply.Status,
					"reason", d.Reply.Reason, "peer", s.PeerID(), "method", r.Method, "host", r.Host, "path", r.URL.Path)
			}
			return filterReply(w, r, d.Reply), false
		}
	}
	return 0, true
}

// refusalFlags are the flags of a filter's local reply: by the filter's
// name, or else by its status.
func refusalFlags(filterName string, status int) observe.Flags {
	if f := flagsOfFilter(filterName); f != 0 {
		return f
	}
	switch status {
	case http.StatusForbidden:
		return observe.Denied
	case http.StatusUnauthorized:
		return observe.Unauthenticated
	case http.StatusTooManyRequests:
		return observe.RateLimited
	}
	return 0
}

var (
	grpcContentType = []string{"application/grpc"}
	grpcStatusNames = map[int][]string{}
)

func init() {
	for code := 0; code <= 16; code++ {
		grpcStatusNames[code] = []string{strconv.Itoa(code)}
	}
}

// filterReply sends a filter's local reply. A gRPC request, or a reply that
// names a gRPC status, gets a trailers-only gRPC response: HTTP 200 with
// grpc-status, as Envoy sends.
func filterReply(w http.ResponseWriter, r *http.Request, rep *filter.Reply) int {
	h := w.Header()
	for k, v := range rep.Header {
		h[k] = v
	}
	h["X-Weft-Error"] = []string{rep.Reason}
	grpc := rep.GRPCStatus != nil || isGRPC(r)
	if !grpc {
		if rep.Body != "" {
			h["Content-Type"] = textPlain
		}
		w.WriteHeader(rep.Status)
		if rep.Body != "" {
			_, _ = w.Write([]byte(rep.Body))
		}
		return rep.Status
	}
	code := 0
	if rep.GRPCStatus != nil {
		code = *rep.GRPCStatus
	} else {
		code = grpcFromHTTP(rep.Status)
	}
	h["Content-Type"] = grpcContentType
	if v, ok := grpcStatusNames[code]; ok {
		h["Grpc-Status"] = v
	} else {
		h["Grpc-Status"] = []string{strconv.Itoa(code)}
	}
	if rep.Body != "" {
		h["Grpc-Message"] = []string{rep.Body}
	}
	w.WriteHeader(http.StatusOK)
	return http.StatusOK
}

func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+") || strings.HasPrefix(ct, "application/grpc;")
}

// grpcFromHTTP maps an HTTP status to a gRPC status as Envoy's local
// replies do.
func grpcFromHTTP(code int) int {
	switch code {
	case 400:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 12 // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return 14 // UNAVAILABLE
	default:
		return 2 // UNKNOWN
	}
}
