package client

import (
	"context"
	"net/http"
	"net/url"
)

// Route status phases, from the least to the most done.
const (
	// RouteNotAccepted: the Route is stored but does not govern its service.
	RouteNotAccepted = "NotAccepted"
	// RouteRejected: a proxy that should apply the Route refused its configuration.
	RouteRejected = "Rejected"
	// RoutePending: some proxies have not accepted the current configuration yet.
	RoutePending = "Pending"
	// RouteApplied: every connected proxy that reads the Route accepted it.
	RouteApplied = "Applied"
	// RouteNoProxies: no connected proxy reads the Route.
	RouteNoProxies = "NoProxies"
	// RouteUnknown: the control plane does not track proxies.
	RouteUnknown = "Unknown"
)

// RouteStatus is what became of one Route.
type RouteStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Service   string `json:"service"`
	// Phase sums the fields below up: one of the Route* constants.
	Phase string `json:"phase"`
	// Accepted is true when the Route is stored, valid, refers to what
	// exists, and is the Route that governs its service.
	Accepted bool `json:"accepted"`
	// Reason says why the Route is not accepted.
	Reason string `json:"reason,omitempty"`
	// Proxies counts the connected proxies that read the Route, Applied
	// those of them running the current configuration; both are nil when
	// the control plane does not track proxies.
	Proxies *int `json:"proxies,omitempty"`
	Applied *int `json:"applied,omitempty"`
	// Errors are the messages of the proxies that rejected the current
	// configuration, one per proxy.
	Errors []string `json:"errors,omitempty"`
}

// RouteStatusList is the body of GET /api/v1/status/routes.
type RouteStatusList struct {
	Items []RouteStatus `json:"items"`
}

// RouteStatuses returns the status of every Route in namespace, or in every
// namespace when it is empty.
func (c *Client) RouteStatuses(ctx context.Context, namespace string) ([]RouteStatus, error) {
	q := url.Values{}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	var list RouteStatusList
	if err := c.do(ctx, http.MethodGet, "/api/v1/status/routes", q, "", nil, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}
