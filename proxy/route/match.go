package route

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/weftmesh/weft/proxy/match"
)

// Request is what route matching reads of a request. Host and Path are as
// for Match; the others may be empty.
type Request struct {
	Host   string
	Path   string
	Method string
	// Scheme is "http" or "https", the request's :scheme.
	Scheme string
	Header http.Header
}

type pseudo uint8

const (
	notPseudo pseudo = iota
	pseudoMethod
	pseudoAuthority
	pseudoPath
	pseudoScheme
)

// headerMatcher is a compiled routev3.HeaderMatcher.
type headerMatcher struct {
	name    string // canonical MIME form
	pseudo  pseudo
	present *bool // present_match; nil for a string match
	str     match.String
	invert  bool
}

func compileHeaderMatcher(h *routev3.HeaderMatcher, path string) (headerMatcher, error) {
	hm := headerMatcher{invert: h.GetInvertMatch()}
	name := strings.ToLower(h.GetName())
	switch {
	case name == "":
		return hm, fieldErr(path+".name", "a header name is required")
	case name == ":method":
		hm.pseudo = pseudoMethod
	case name == ":authority" || name == "host":
		hm.pseudo = pseudoAuthority
	case name == ":path":
		hm.pseudo = pseudoPath
	case name == ":scheme":
		hm.pseudo = pseudoScheme
	case name[0] == ':':
		return hm, fieldErr(path+".name", "pseudo-header %q is not supported", h.GetName())
	default:
		hm.name = textproto.CanonicalMIMEHeaderKey(name)
	}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := match.Compile(s.StringMatch, path+".string_match")
		if err != nil {
			return hm, err
		}
		hm.str = sm
	case *routev3.HeaderMatcher_PresentMatch:
		p := s.PresentMatch
		hm.present = &p
	default:
		return hm, fieldErr(path, "string_match or present_match is required")
	}
	return hm, nil
}

// matches follows Envoy: an absent header never matches a string match,
// inverted or not; present_match compares presence, then inverts.
func (m *headerMatcher) matches(r *Request) bool {
	v, ok := m.value(r)
	if !ok {
		return m.present != nil && *m.present == m.invert
	}
	if m.present != nil {
		return *m.present != m.invert
	}
	return m.str.Matches(v) != m.invert
}

// value returns the header's value; several values are joined with ",", as
// Envoy does before matching.
func (m *headerMatcher) value(r *Request) (string, bool) {
	switch m.pseudo {
	case pseudoMethod:
		return r.Method, r.Method != ""
	case pseudoAuthority:
		return r.Host, r.Host != ""
	case pseudoPath:
		return r.Path, r.Path != ""
	case pseudoScheme:
		return r.Scheme, r.Scheme != ""
	}
	vv, ok := r.Header[m.name]
	switch {
	case !ok || len(vv) == 0:
		return "", false
	case len(vv) == 1:
		return vv[0], true
	default:
		return strings.Join(vv, ","), true
	}
}

// queryMatcher is a compiled routev3.QueryParameterMatcher.
type queryMatcher struct {
	name    string
	present bool
	str     match.String
}

func compileQueryMatcher(q *routev3.QueryParameterMatcher, path string) (queryMatcher, error) {
	qm := queryMatcher{name: q.GetName()}
	if qm.name == "" {
		return qm, fieldErr(path+".name", "a query parameter name is required")
	}
	switch s := q.GetQueryParameterMatchSpecifier().(type) {
	case *routev3.QueryParameterMatcher_StringMatch:
		sm, err := match.Compile(s.StringMatch, path+".string_match")
		if err != nil {
			return qm, err
		}
		qm.str = sm
	case *routev3.QueryParameterMatcher_PresentMatch:
		// Envoy treats present_match: false like true: the parameter must
		// be there.
		qm.present = true
	default:
		return qm, fieldErr(path, "string_match or present_match is required")
	}
	return qm, nil
}

// matches looks at the first value of the parameter, decoded, as Envoy does;
// an absent parameter never matches.
func (m *queryMatcher) matches(path string) bool {
	v, ok := queryValue(path, m.name)
	if !ok {
		return false
	}
	return m.present || m.str.Matches(v)
}

// queryValue returns the first value of a query parameter in a request
// target. It allocates only to decode an escaped name or value.
func queryValue(path, name string) (string, bool) {
	i := strings.IndexByte(path, '?')
	if i < 0 {
		return "", false
	}
	q := path[i+1:]
	if j := strings.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(k, "%+") {
			dk, err := url.QueryUnescape(k)
			if err != nil {
				continue
			}
			k = dk
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			if dv, err := url.QueryUnescape(v); err == nil {
				v = dv
			}
		}
		return v, true
	}
	return "", false
}

// requestMatch is what a route matches besides the path.
type requestMatch struct {
	headers []headerMatcher
	query   []queryMatcher
}

func compileRequestMatch(m *routev3.RouteMatch, path string) (requestMatch, error) {
	var rm requestMatch
	for i, h := range m.GetHeaders() {
		hm, err := compileHeaderMatcher(h, fmt.Sprintf("%s.headers[%d]", path, i))
		if err != nil {
			return rm, err
		}
		rm.headers = append(rm.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm, err := compileQueryMatcher(q, fmt.Sprintf("%s.query_parameters[%d]", path, i))
		if err != nil {
			return rm, err
		}
		rm.query = append(rm.query, qm)
	}
	return rm, nil
}

func (m *requestMatch) matches(r *Request) bool {
	for i := range m.headers {
		if !m.headers[i].matches(r) {
			return false
		}
	}
	for i := range m.query {
		if !m.query[i].matches(r.Path) {
			return false
		}
	}
	return true
}
