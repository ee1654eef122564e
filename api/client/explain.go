package client

import (
	"context"
	"net/http"
	"net/url"
	"sort"
)

// ExplainRequest is the request to explain: from one service to another.
type ExplainRequest struct {
	// From and To name services as "name" or "name.namespace".
	From, To string
	// Method and Path default to GET and /.
	Method, Path string
	// Header holds request headers, one value each.
	Header map[string]string
}

// Explanation is GET /api/v1/explain's answer: what the mesh would do with
// one request, worked out with the proxy's own matching code on the
// configuration the control plane serves now.
type Explanation struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Protocol string `json:"protocol"`
	Method   string `json:"method,omitempty"`
	Path     string `json:"path,omitempty"`
	// Route is the route rule the caller's proxy matches; nil for TCP or
	// when nothing matches (then Verdict says so).
	Route *ExplainedRoute `json:"route,omitempty"`
	// Backends are the clusters the request may go to, with their share.
	Backends []ExplainedBackend `json:"backends,omitempty"`
	// Filters are the destination's inbound filters, in order, each with
	// its decision; the chain stops at the first that answers.
	Filters []ExplainedFilter `json:"filters,omitempty"`
	// Verdict sums it up: forwarded, or refused and by what.
	Verdict string   `json:"verdict"`
	Notes   []string `json:"notes,omitempty"`
}

// ExplainedRoute is the matched route rule of the caller's proxy.
type ExplainedRoute struct {
	// Name is the route's name in the RouteConfiguration.
	Name string `json:"name"`
	// Source says where it comes from: the service's Route, or the default.
	Source  string   `json:"source"`
	Timeout string   `json:"timeout,omitempty"`
	Retries string   `json:"retries,omitempty"`
	Mirrors []string `json:"mirrors,omitempty"`
	Filters []string `json:"filters,omitempty"` // per-route filter configs, e.g. fault injection
}

// ExplainedBackend is one cluster of the route, with its endpoints.
type ExplainedBackend struct {
	Cluster   string   `json:"cluster"`
	Weight    uint64   `json:"weight"`
	Percent   float64  `json:"percent"`
	Endpoints []string `json:"endpoints"`
}

// ExplainedFilter is one inbound filter's decision.
type ExplainedFilter struct {
	Name string `json:"name"`
	// Decision is "continue", "delay" or "reply".
	Decision string            `json:"decision"`
	Status   int               `json:"status,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	Header   map[string]string `json:"header,omitempty"`
	Detail   string            `json:"detail,omitempty"`
}

// Explain asks the control plane what it would do with req.
func (c *Client) Explain(ctx context.Context, req ExplainRequest) (*Explanation, error) {
	q := url.Values{}
	q.Set("from", req.From)
	q.Set("to", req.To)
	if req.Method != "" {
		q.Set("method", req.Method)
	}
	if req.Path != "" {
		q.Set("path", req.Path)
	}
	keys := make([]string, 0, len(req.Header))
	for k := range req.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		q.Add("header", k+"="+req.Header[k])
	}
	var e Explanation
	if err := c.do(ctx, http.MethodGet, "/api/v1/explain", q, "", nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}
