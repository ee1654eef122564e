package client

import (
	"context"
	"net/http"
	"net/url"
)

// PolicyStatus is what became of one destination policy (AccessPolicy,
// and the other kinds enforced on a service's inbound listener). Its
// phases are the Route* constants.
type PolicyStatus struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Service   string `json:"service"`
	Phase     string `json:"phase"`
	// Accepted is true when the policy is valid and refers to what exists.
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
	// Proxies counts the connected proxies of the service, which enforce
	// the policy, Applied those of them that accepted a configuration
	// carrying its current revision; both are nil when the control plane
	// does not track proxies.
	Proxies *int `json:"proxies,omitempty"`
	Applied *int `json:"applied,omitempty"`
	// Errors are the messages of the proxies that rejected it.
	Errors []string `json:"errors,omitempty"`
	// Warnings say which parts can never match, and why (shadowed rules,
	// ports the service does not serve, claims no RequestAuth provides).
	Warnings []string `json:"warnings,omitempty"`
}

// PolicyStatusList is the body of GET /api/v1/status/policies.
type PolicyStatusList struct {
	Items []PolicyStatus `json:"items"`
}

// PolicyStatuses returns the status of the policies of kind (every policy
// kind when empty) in namespace (every namespace when empty).
func (c *Client) PolicyStatuses(ctx context.Context, kind, namespace string) ([]PolicyStatus, error) {
	q := url.Values{}
	if kind != "" {
		q.Set("kind", kind)
	}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	var list PolicyStatusList
	if err := c.do(ctx, http.MethodGet, "/api/v1/status/policies", q, "", nil, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}
