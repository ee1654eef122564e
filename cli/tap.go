package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
)

type tapOptions struct {
	namespace string
	path      string
	method    string
	authority string
	direction string
	output    string
	headers   bool
	max       int
}

// errEnough ends a stream once --max events have been shown.
var errEnough = errors.New("enough events")

func newTapCmd(root *rootOptions) *cobra.Command {
	o := &tapOptions{}
	cmd := &cobra.Command{
		Use:   "tap SERVICE",
		Short: "Stream a service's live requests",
		Long: `Stream the requests a service's proxies handle, as they end: one line per request
with its time, source and destination, method, authority and path, status, latency
and whether it travelled over mutual TLS. Bodies are never shown, and header values
that carry credentials (Authorization, Cookie...) are redacted by the proxy.

By default the requests the service receives (inbound) are shown; --direction
outbound shows those it sends.`,
		Example: `  weft tap catalog -n shop
  weft tap catalog -n shop --path /items --method GET --headers
  weft tap catalog -n shop -o json --max 10`,
		Args: argsBetween(1, 1, "a SERVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := parseFormat(o.output)
			if err != nil {
				return err
			}
			if format == formatYAML {
				return usagef("weft tap prints table or json")
			}
			if o.direction != "inbound" && o.direction != "outbound" {
				return usagef("--direction must be inbound or outbound, got %q", o.direction)
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			enc := json.NewEncoder(w)
			enc.SetEscapeHTML(false)
			n := 0
			err = c.Tap(cmd.Context(), client.TapOptions{
				Service: args[0], Namespace: o.namespace, Direction: o.direction,
				Path: o.path, Method: o.method, Authority: o.authority,
			}, func(ev client.TapEvent) error {
				if format == formatJSON {
					if err := enc.Encode(ev); err != nil {
						return err
					}
				} else {
					printTapEvent(w, ev, o.headers)
				}
				n++
				if o.max > 0 && n >= o.max {
					return errEnough
				}
				return nil
			})
			if errors.Is(err, errEnough) || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "default", "namespace of the service")
	cmd.Flags().StringVar(&o.path, "path", "", "only requests whose path starts with this")
	cmd.Flags().StringVar(&o.method, "method", "", "only requests with this method")
	cmd.Flags().StringVar(&o.authority, "authority", "", "only requests with this authority (Host)")
	cmd.Flags().StringVar(&o.direction, "direction", "inbound", "inbound (requests the service receives) or outbound (requests it sends)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table (one line per request) or json (JSON lines)")
	cmd.Flags().BoolVar(&o.headers, "headers", false, "also print request and response headers")
	cmd.Flags().IntVar(&o.max, "max", 0, "stop after this many requests (0: until interrupted)")
	return cmd
}

// printTapEvent writes one request on one line:
// TIME DIRECTION SOURCE -> DESTINATION METHOD AUTHORITY PATH STATUS LATENCY [tls] [flags] WORKLOAD
func printTapEvent(w io.Writer, ev client.TapEvent, headers bool) {
	var b strings.Builder
	b.WriteString(ev.Time.UTC().Format("15:04:05.000"))
	b.WriteString(" " + ev.Direction)
	b.WriteString(" " + orDash(ev.Source) + " -> " + orDash(ev.Destination))
	b.WriteString(" " + ev.Method + " " + ev.Authority + " " + ev.Path)
	b.WriteString(" " + strconv.Itoa(ev.Status))
	if ev.GRPCStatus != "" {
		b.WriteString(" grpc-status=" + ev.GRPCStatus)
	}
	b.WriteString(" " + strconv.FormatFloat(ev.DurationMs, 'f', 1, 64) + "ms")
	if ev.MTLS {
		b.WriteString(" mtls")
	} else {
		b.WriteString(" plaintext")
	}
	if len(ev.Flags) > 0 {
		b.WriteString(" [" + strings.Join(ev.Flags, ",") + "]")
	}
	b.WriteString(" " + ev.Workload)
	fmt.Fprintln(w, b.String())
	if headers {
		printHeaders(w, "  > ", ev.RequestHdr)
		printHeaders(w, "  < ", ev.ResponseHdr)
	}
}

func printHeaders(w io.Writer, prefix string, h map[string][]string) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			fmt.Fprintf(w, "%s%s: %s\n", prefix, strings.ToLower(k), v)
		}
	}
}
