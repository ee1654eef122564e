package route

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// DirectResponse is a reply the proxy sends itself, without an upstream
// (Envoy's route direct_response): egress refused by the Mesh's outbound
// traffic policy, for one.
type DirectResponse struct {
	Status int
	Body   string
}

// maxDirectBody bounds a direct response's body, as Envoy's 4 KiB default
// max_direct_response_body_size_bytes does.
const maxDirectBody = 4096

// compileDirect makes r, a route whose match is compiled, answer with dr.
// Response header edits apply to the reply; a direct response forwards
// nothing, so request header edits are refused.
func compileDirect[T any](r Route[T], pr *routev3.Route, dr *routev3.DirectResponseAction, path string) (Route[T], error) {
	dpath := path + ".direct_response"
	status := int(dr.GetStatus())
	if status < 200 || status > 599 {
		return r, fieldErr(dpath+".status", "%d is not an HTTP status from 200 to 599", status)
	}
	d := &DirectResponse{Status: status}
	if src := dr.GetBody(); src != nil {
		switch s := src.GetSpecifier().(type) {
		case *corev3.DataSource_InlineString:
			d.Body = s.InlineString
		case *corev3.DataSource_InlineBytes:
			d.Body = string(s.InlineBytes)
		default:
			return r, fieldErr(dpath+".body", "only inline_string and inline_bytes are supported")
		}
		if len(d.Body) > maxDirectBody {
			return r, fieldErr(dpath+".body", "is %d bytes: at most %d are allowed", len(d.Body), maxDirectBody)
		}
	}
	if len(pr.GetRequestHeadersToAdd()) > 0 || len(pr.GetRequestHeadersToRemove()) > 0 {
		return r, fieldErr(path+".request_headers_to_add", "a direct response forwards no request to edit")
	}
	resEdits, err := compileHeaderEdits(pr.GetResponseHeadersToAdd(), pr.GetResponseHeadersToRemove(),
		path, "response_headers_to_add", "response_headers_to_remove")
	if err != nil {
		return r, err
	}
	if !resEdits.Empty() {
		r.ResponseEdits = append(r.ResponseEdits, &resEdits)
	}
	r.Direct = d
	return r, nil
}
