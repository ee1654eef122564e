package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
)

type statOptions struct {
	namespace     string
	allNamespaces bool
	window        time.Duration
	edges         bool
	output        string
}

func newStatCmd(root *rootOptions) *cobra.Command {
	o := &statOptions{}
	cmd := &cobra.Command{
		Use:   "stat [SERVICE]",
		Short: "Show services' golden metrics: success rate, requests per second, latency",
		Long: `Show each service's golden metrics over a window, as its proxies measured them on
the receiving (inbound) side: success rate (non-5xx), requests per second, latency
percentiles, the share of requests over mutual TLS and the number of proxies.

With a SERVICE, or with --edges, also show each caller of the service (edges).
Callers outside the mesh appear as "unknown".`,
		Example: `  weft stat
  weft stat catalog -n shop --window 5m
  weft stat -A --edges -o json`,
		Args: argsBetween(0, 1, "at most one SERVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := parseFormat(o.output)
			if err != nil {
				return err
			}
			if format == formatYAML {
				return usagef("weft stat prints table or json")
			}
			if o.window < time.Second || o.window > 15*time.Minute {
				return usagef("--window must be between 1s and 15m, such as 30s or 5m; got %s", o.window)
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			st, err := c.Stats(cmd.Context(), o.window)
			if err != nil {
				return err
			}
			service := ""
			if len(args) == 1 {
				service = args[0]
			}
			st = filterStats(st, o.namespace, o.allNamespaces, service)
			if service != "" && len(st.Services) == 0 {
				return fmt.Errorf("service %s.%s has no proxy reporting metrics", service, o.namespace)
			}
			if format == formatJSON {
				return writeIndentedJSON(cmd.OutOrStdout(), st)
			}
			printStats(cmd.OutOrStdout(), st, o.allNamespaces, service != "" || o.edges)
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "default", "namespace of the services")
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "services of every namespace")
	cmd.Flags().DurationVar(&o.window, "window", time.Minute, "how far back to look")
	cmd.Flags().BoolVar(&o.edges, "edges", false, "also show who calls each service")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	return cmd
}

// filterStats keeps the services, edges and workloads asked for: edges
// whose destination is kept.
func filterStats(st *client.Stats, ns string, all bool, service string) *client.Stats {
	out := &client.Stats{Window: st.Window, At: st.At, Services: []client.ServiceStats{}, Edges: []client.EdgeStats{}, Workloads: []client.WorkloadStats{}}
	keep := func(svcNS, svc string) bool {
		return (all || svcNS == ns) && (service == "" || svc == service)
	}
	kept := map[string]bool{}
	for _, s := range st.Services {
		if keep(s.Namespace, s.Name) {
			out.Services = append(out.Services, s)
			kept[s.Name+"."+s.Namespace] = true
		}
	}
	for _, e := range st.Edges {
		if kept[e.To] {
			out.Edges = append(out.Edges, e)
		}
	}
	for _, w := range st.Workloads {
		if keep(w.Namespace, w.Service) {
			out.Workloads = append(out.Workloads, w)
		}
	}
	return out
}

func printStats(w io.Writer, st *client.Stats, allNamespaces, edges bool) {
	tw := newTable(w)
	headers := []string{"NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "MTLS", "TCP_CONN"}
	if allNamespaces {
		headers = append([]string{"NAMESPACE"}, headers...)
	}
	writeRow(tw, headers)
	for _, s := range st.Services {
		row := append([]string{s.Name, strconv.Itoa(s.Instances)}, goldenCells(s.Golden)...)
		row = append(row, tcpCell(s.Golden))
		if allNamespaces {
			row = append([]string{s.Namespace}, row...)
		}
		writeRow(tw, row)
	}
	tw.Flush()
	if len(st.Services) == 0 {
		fmt.Fprintf(w, "No services have reported metrics in the last %s.\n", st.Window)
	}
	if !edges {
		return
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	writeRow(tw, []string{"FROM", "TO", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "MTLS", "TCP_CONN"})
	for _, e := range st.Edges {
		writeRow(tw, append(append([]string{e.From, e.To}, goldenCells(e.Golden)...), tcpCell(e.Golden)))
	}
	tw.Flush()
	if len(st.Edges) == 0 {
		fmt.Fprintf(w, "No calls in the last %s.\n", st.Window)
	}
}

// goldenCells are SUCCESS, RPS, the latency percentiles and MTLS.
func goldenCells(g client.Golden) []string {
	return []string{percent(g.SuccessRate), formatRPS(g.RPS), millis(g.P50Ms), millis(g.P95Ms), millis(g.P99Ms), percent(g.MTLSShare)}
}

func tcpCell(g client.Golden) string {
	if g.TCPConnections == 0 && g.BytesSent == 0 && g.BytesReceived == 0 {
		return "-"
	}
	return strconv.FormatFloat(g.TCPConnections, 'f', -1, 64)
}

func percent(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v*100, 'f', 2, 64) + "%"
}

func formatRPS(v float64) string {
	return strconv.FormatFloat(v, 'f', 1, 64) + "rps"
}

func millis(v *float64) string {
	if v == nil {
		return "-"
	}
	s := strconv.FormatFloat(*v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + "ms"
}
