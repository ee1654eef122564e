package route

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Redirect is a route that answers with a redirect to the same request on
// another scheme or port (Envoy's route redirect with https_redirect and
// port_redirect), as a gateway's HTTP listener sends clients to HTTPS.
type Redirect struct {
	// HTTPS switches the scheme to https.
	HTTPS bool
	// Port, if not 0, replaces the port; 0 keeps none for https (its
	// default port) and the request's own otherwise.
	Port uint32
	// Status is 301, 302, 303, 307 or 308.
	Status int
}

var redirectCodes = map[routev3.RedirectAction_RedirectResponseCode]int{
	routev3.RedirectAction_MOVED_PERMANENTLY:  http.StatusMovedPermanently,
	routev3.RedirectAction_FOUND:              http.StatusFound,
	routev3.RedirectAction_SEE_OTHER:          http.StatusSeeOther,
	routev3.RedirectAction_TEMPORARY_REDIRECT: http.StatusTemporaryRedirect,
	routev3.RedirectAction_PERMANENT_REDIRECT: http.StatusPermanentRedirect,
}

// compileRedirect makes r, a route whose match is compiled, answer with
// the redirect rd. Only the scheme and port may change: host and path
// rewrites are refused.
func compileRedirect[T any](r Route[T], pr *routev3.Route, rd *routev3.RedirectAction, path string) (Route[T], error) {
	rpath := path + ".redirect"
	switch {
	case rd.GetHostRedirect() != "":
		return r, fieldErr(rpath+".host_redirect", "is not supported (only https_redirect and port_redirect)")
	case rd.GetPathRewriteSpecifier() != nil:
		return r, fieldErr(rpath+".path_redirect", "is not supported (only https_redirect and port_redirect)")
	case rd.GetStripQuery():
		return r, fieldErr(rpath+".strip_query", "is not supported")
	case rd.GetSchemeRedirect() != "":
		return r, fieldErr(rpath+".scheme_redirect", "is not supported (use https_redirect)")
	case rd.GetPortRedirect() > 65535:
		return r, fieldErr(rpath+".port_redirect", "%d is not a port", rd.GetPortRedirect())
	}
	status, ok := redirectCodes[rd.GetResponseCode()]
	if !ok {
		return r, fieldErr(rpath+".response_code", "unknown code %v", rd.GetResponseCode())
	}
	if len(pr.GetRequestHeadersToAdd()) > 0 || len(pr.GetRequestHeadersToRemove()) > 0 {
		return r, fieldErr(path+".request_headers_to_add", "a redirect forwards no request to edit")
	}
	resEdits, err := compileHeaderEdits(pr.GetResponseHeadersToAdd(), pr.GetResponseHeadersToRemove(),
		path, "response_headers_to_add", "response_headers_to_remove")
	if err != nil {
		return r, err
	}
	if !resEdits.Empty() {
		r.ResponseEdits = append(r.ResponseEdits, &resEdits)
	}
	r.Redirect = &Redirect{HTTPS: rd.GetHttpsRedirect(), Port: rd.GetPortRedirect(), Status: status}
	return r, nil
}

// Location is where the redirect sends req: its host (without the port
// when the scheme's default applies), path and query, on the new scheme
// and port. It is "" when the request's Host is no host name or IP, which
// a redirect must not echo.
func (rd *Redirect) Location(req *http.Request) string {
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	if rd.HTTPS {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(req.Host)
	if err != nil {
		host, port = req.Host, ""
	}
	if !validHost(host) {
		return ""
	}
	switch {
	case rd.Port != 0:
		port = strconv.Itoa(int(rd.Port))
	case rd.HTTPS:
		port = ""
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	u := url.URL{Scheme: scheme, Host: host, Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String()
}

// validHost reports whether h is a DNS name or an IP address (an IPv6 one
// without brackets, as SplitHostPort leaves it).
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}
