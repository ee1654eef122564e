package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// maxStatusMessage bounds the message a STATUS cell quotes; -o yaml shows it whole.
const maxStatusMessage = 60

type routeKey struct{ namespace, name string }

// routeStatuses fetches the status of the Routes in namespace (every
// namespace when it is empty). A control plane that cannot tell is not an
// error: the Routes are shown without status, and why goes to warn.
func routeStatuses(ctx context.Context, c *client.Client, namespace string, warn io.Writer) map[routeKey]*client.RouteStatus {
	items, err := c.RouteStatuses(ctx, namespace)
	return statusesByName(items, err, "route", warn, func(s *client.RouteStatus) routeKey { return routeKey{s.Namespace, s.Name} })
}

// statusesByName indexes statuses by namespace and name; on err it warns
// (unless the control plane has no such API) and returns nil.
func statusesByName[S any](items []S, err error, what string, warn io.Writer, key func(*S) routeKey) map[routeKey]*S {
	if err != nil {
		if !client.IsNotFound(err) {
			fmt.Fprintf(warn, "warning: %s status unavailable: %v\n", what, err)
		}
		return nil
	}
	out := make(map[routeKey]*S, len(items))
	for i := range items {
		out[key(&items[i])] = &items[i]
	}
	return out
}

// routeStatusBlock is the status of a Route as `weft get -o yaml|json`
// shows it, beside its spec.
type routeStatusBlock struct {
	Phase    string   `json:"phase"`
	Accepted bool     `json:"accepted"`
	Reason   string   `json:"reason,omitempty"`
	Proxies  *int     `json:"proxies,omitempty"`
	Applied  *int     `json:"applied,omitempty"`
	Errors   []string `json:"errors,omitempty"`
}

// printRoutes prints Routes with their status, when known.
func printRoutes(w io.Writer, format outputFormat, objs []*v1alpha1.Object, statuses map[routeKey]*client.RouteStatus, single bool) error {
	return printWithStatus(w, format, v1alpha1.RouteKind, objs, single,
		func(o *v1alpha1.Object) any {
			st := statuses[keyOf(o)]
			if st == nil {
				return nil
			}
			return routeStatusBlock{Phase: st.Phase, Accepted: st.Accepted, Reason: st.Reason,
				Proxies: st.Proxies, Applied: st.Applied, Errors: st.Errors}
		},
		func(o *v1alpha1.Object) string { return routeStatusText(statuses[keyOf(o)]) })
}

func keyOf(o *v1alpha1.Object) routeKey { return routeKey{o.Metadata.Namespace, o.Metadata.Name} }

// printWithStatus prints objects of kind with their status: a STATUS
// column in tables, a status field beside the spec in YAML and JSON. block
// is the status field of an object (nil when unknown), text its cell.
func printWithStatus(w io.Writer, format outputFormat, kind v1alpha1.Kind, objs []*v1alpha1.Object, single bool,
	block func(*v1alpha1.Object) any, text func(*v1alpha1.Object) string) error {
	sortObjects(objs)
	switch format {
	case formatJSON, formatYAML:
		items := make([]json.RawMessage, 0, len(objs))
		for _, o := range objs {
			item, err := withStatusBlock(o, block(o))
			if err != nil {
				return err
			}
			items = append(items, item)
		}
		if format == formatJSON {
			if single && len(items) == 1 {
				return writeIndentedJSON(w, items[0])
			}
			return writeIndentedJSON(w, struct {
				Items []json.RawMessage `json:"items"`
			}{items})
		}
		for i, item := range items {
			if i > 0 {
				fmt.Fprintln(w, "---")
			}
			if err := writeYAML(w, item); err != nil {
				return err
			}
		}
		return nil
	}
	cols := kindColumns[kind.Name]
	tw := newTable(w)
	writeRow(tw, append(append([]string{"NAMESPACE", "NAME"}, cols.headers...), "STATUS"))
	for _, o := range objs {
		row := append([]string{o.Metadata.Namespace, o.Metadata.Name}, cols.row(o)...)
		writeRow(tw, append(row, text(o)))
	}
	return tw.Flush()
}

// routeStatusText is the STATUS cell of a Route: "applied 3/3",
// "pending 1/3", "rejected by 2: <first message>", "not accepted: <why>".
func routeStatusText(st *client.RouteStatus) string {
	if st == nil {
		return "-"
	}
	counts := func() string {
		if st.Proxies == nil || st.Applied == nil {
			return ""
		}
		return " " + strconv.Itoa(*st.Applied) + "/" + strconv.Itoa(*st.Proxies)
	}
	switch st.Phase {
	case client.RouteNotAccepted:
		return "not accepted: " + truncate(st.Reason, maxStatusMessage)
	case client.RouteRejected:
		msg := ""
		if len(st.Errors) > 0 {
			msg = ": " + truncate(st.Errors[0], maxStatusMessage)
		}
		return fmt.Sprintf("rejected by %d%s", len(st.Errors), msg)
	case client.RoutePending:
		return "pending" + counts()
	case client.RouteApplied:
		return "applied" + counts()
	case client.RouteNoProxies:
		return "accepted, no proxies"
	case client.RouteUnknown:
		return "accepted"
	}
	return strings.ToLower(st.Phase)
}

// truncate shortens s to at most n runes, on one line.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}
