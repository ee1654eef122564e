package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// policyKinds are the kinds `weft get` shows with their policy status:
// the destination policies the control plane reports on.
var policyKinds = map[string]bool{v1alpha1.AccessPolicyKind.Name: true}

func init() {
	kindColumns[v1alpha1.AccessPolicyKind.Name] = struct {
		headers []string
		row     func(*v1alpha1.Object) []string
	}{
		headers: []string{"SERVICE", "ACTION", "RULES"},
		row: func(o *v1alpha1.Object) []string {
			s, ok := o.Spec.(*v1alpha1.AccessPolicySpec)
			if !ok {
				return []string{"", "", ""}
			}
			return []string{orDash(s.Service), orDash(string(s.Action)), strconv.Itoa(len(s.Rules))}
		},
	}
}

// policyStatuses fetches the status of the policies of kind in namespace
// (every namespace when it is empty). As for Routes, a control plane that
// cannot tell is not an error: why goes to warn.
func policyStatuses(ctx context.Context, c *client.Client, kind, namespace string, warn io.Writer) map[routeKey]*client.PolicyStatus {
	items, err := c.PolicyStatuses(ctx, kind, namespace)
	return statusesByName(items, err, "policy", warn, func(s *client.PolicyStatus) routeKey { return routeKey{s.Namespace, s.Name} })
}

// policyStatusBlock is the status of a policy as `weft get -o yaml|json`
// shows it, beside its spec.
type policyStatusBlock struct {
	Phase    string   `json:"phase"`
	Accepted bool     `json:"accepted"`
	Reason   string   `json:"reason,omitempty"`
	Proxies  *int     `json:"proxies,omitempty"`
	Applied  *int     `json:"applied,omitempty"`
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// printPolicies prints policies with their status, when known: a STATUS
// column in tables, whose text says how many warnings there are (-o yaml
// lists them), or a status field beside the spec.
func printPolicies(w io.Writer, format outputFormat, kind v1alpha1.Kind, objs []*v1alpha1.Object, statuses map[routeKey]*client.PolicyStatus, single bool) error {
	return printWithStatus(w, format, kind, objs, single,
		func(o *v1alpha1.Object) any {
			st := statuses[keyOf(o)]
			if st == nil {
				return nil
			}
			return policyStatusBlock{Phase: st.Phase, Accepted: st.Accepted, Reason: st.Reason,
				Proxies: st.Proxies, Applied: st.Applied, Errors: st.Errors, Warnings: st.Warnings}
		},
		func(o *v1alpha1.Object) string { return policyStatusText(statuses[keyOf(o)]) })
}

// withStatusBlock is the JSON of o with a status field, when block is set.
func withStatusBlock(o *v1alpha1.Object, block any) (json.RawMessage, error) {
	b, err := json.Marshal(o)
	if err != nil || block == nil {
		return b, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, fmt.Errorf("encode %s: %w", o.Ref(), err)
	}
	status, err := json.Marshal(block)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", o.Ref(), err)
	}
	fields["status"] = status
	return json.Marshal(fields)
}

// policyStatusText is the STATUS cell of a policy: that of a Route, then
// "; 2 warnings" when some of it can never match.
func policyStatusText(st *client.PolicyStatus) string {
	if st == nil {
		return "-"
	}
	text := routeStatusText(&client.RouteStatus{Phase: st.Phase, Accepted: st.Accepted, Reason: st.Reason,
		Proxies: st.Proxies, Applied: st.Applied, Errors: st.Errors})
	switch n := len(st.Warnings); n {
	case 0:
	case 1:
		text += "; 1 warning: " + truncate(st.Warnings[0], maxStatusMessage)
	default:
		text += "; " + strconv.Itoa(n) + " warnings (-o yaml lists them)"
	}
	return text
}
