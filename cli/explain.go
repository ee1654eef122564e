package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
)

func newExplainCmd(root *rootOptions) *cobra.Command {
	var (
		req     client.ExplainRequest
		headers []string
		output  string
	)
	cmd := &cobra.Command{
		Use:   "explain --from SERVICE --to SERVICE [--method M] [--path P] [--header k=v]...",
		Short: "Show what the mesh would do with a request, from the live configuration",
		Long: `Explain one request from a service to another with the configuration the
control plane serves now: the route rule the caller's proxy matches, the
backends and weights it picks from and their endpoints, then each filter of
the destination's inbound side (JWT authentication, access policies, rate
limits) and its decision, as the proxies' own code makes it.

Services are NAME or NAME.NAMESPACE (namespace "default"). An Authorization
header given with --header is checked like a real request's.`,
		Example: `  weft explain --from frontend --to catalog --path /items
  weft explain --from frontend.shop --to ledger.shop --method POST --path /admin --header x-user=alice`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.From == "" || req.To == "" {
				return usagef("--from and --to are required")
			}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, "=")
				if !ok || k == "" {
					return usagef("--header %q: want NAME=VALUE", h)
				}
				if req.Header == nil {
					req.Header = map[string]string{}
				}
				req.Header[k] = v
			}
			format, err := parseFormat(output)
			if err != nil {
				return err
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			e, err := c.Explain(cmd.Context(), req)
			if err != nil {
				return err
			}
			switch format {
			case formatJSON:
				return writeIndentedJSON(cmd.OutOrStdout(), e)
			case formatYAML:
				return writeYAML(cmd.OutOrStdout(), e)
			}
			printExplanation(cmd.OutOrStdout(), e)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.From, "from", "", "calling service: NAME or NAME.NAMESPACE")
	f.StringVar(&req.To, "to", "", "destination service: NAME or NAME.NAMESPACE")
	f.StringVar(&req.Method, "method", "", "request method (default GET)")
	f.StringVar(&req.Path, "path", "", "request path with optional query (default /)")
	f.StringArrayVar(&headers, "header", nil, "request header NAME=VALUE (repeatable)")
	f.StringVarP(&output, "output", "o", string(formatTable), "output format: table (text), yaml or json")
	return cmd
}

// printExplanation prints an explanation for people.
func printExplanation(w io.Writer, e *client.Explanation) {
	req := ""
	if e.Protocol == "http" {
		req = "  " + e.Method + " " + e.Path
	}
	fmt.Fprintf(w, "%s -> %s (%s)%s\n\n", e.From, e.To, e.Protocol, req)
	if r := e.Route; r != nil {
		fmt.Fprintf(w, "route:     %s\n", r.Source)
		if r.Timeout != "" {
			fmt.Fprintf(w, "timeout:   %s\n", r.Timeout)
		}
		if r.Retries != "" {
			fmt.Fprintf(w, "retries:   %s\n", r.Retries)
		}
		for _, m := range r.Mirrors {
			fmt.Fprintf(w, "mirror:    %s\n", m)
		}
		if len(r.Filters) > 0 {
			fmt.Fprintf(w, "filters:   %s (per route, on the caller's side)\n", strings.Join(r.Filters, ", "))
		}
	}
	if len(e.Backends) > 0 {
		fmt.Fprintln(w, "backends:")
		for _, b := range e.Backends {
			eps := strings.Join(b.Endpoints, " ")
			if eps == "" {
				eps = "(no ready endpoint)"
			}
			fmt.Fprintf(w, "  %-40s %5.1f%%  %s\n", b.Cluster, b.Percent, eps)
		}
	}
	if len(e.Filters) > 0 {
		fmt.Fprintf(w, "at %s:\n", e.To)
		for _, f := range e.Filters {
			line := "  " + f.Name + ": " + f.Decision
			if f.Status != 0 {
				line += fmt.Sprintf(" %d", f.Status)
			}
			if f.Reason != "" {
				line += " (" + f.Reason + ")"
			}
			if f.Detail != "" {
				line += " " + f.Detail
			}
			for k, v := range f.Header {
				line += fmt.Sprintf(" [%s: %s]", k, v)
			}
			fmt.Fprintln(w, line)
		}
	}
	for _, n := range e.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "\nverdict:   %s\n", e.Verdict)
}
