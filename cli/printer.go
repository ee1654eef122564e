package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// outputFormat is how `weft get` prints: a table for people, YAML or JSON
// for programs. YAML lists are one document per object, so they can be
// applied again; JSON lists are {"items": [...]}, as the API returns them.
type outputFormat string

const (
	formatTable outputFormat = "table"
	formatYAML  outputFormat = "yaml"
	formatJSON  outputFormat = "json"
)

func parseFormat(s string) (outputFormat, error) {
	switch f := outputFormat(strings.ToLower(s)); f {
	case formatTable, formatYAML, formatJSON:
		return f, nil
	}
	return "", usagef("unknown output format %q; use table, yaml or json", s)
}

// kindColumns are the table columns of each kind after NAMESPACE and NAME.
// A kind not listed here prints only those two.
var kindColumns = map[string]struct {
	headers []string
	row     func(*v1alpha1.Object) []string
}{
	"Mesh": {
		headers: []string{"TRUST-DOMAIN", "MTLS", "CERT-TTL"},
		row: func(o *v1alpha1.Object) []string {
			s, ok := o.Spec.(*v1alpha1.MeshSpec)
			if !ok {
				return []string{"", "", ""}
			}
			return []string{orDash(s.TrustDomain), orDash(string(s.MTLS.Mode)), orDash(durationOrEmpty(s.CertificateTTL))}
		},
	},
	"Route": {
		headers: []string{"SERVICE", "RULES"},
		row: func(o *v1alpha1.Object) []string {
			s, ok := o.Spec.(*v1alpha1.RouteSpec)
			if !ok {
				return []string{"", ""}
			}
			return []string{orDash(s.Service), strconv.Itoa(len(s.Rules))}
		},
	},
	"Service": {
		headers: []string{"PORTS"},
		row: func(o *v1alpha1.Object) []string {
			s, ok := o.Spec.(*v1alpha1.ServiceSpec)
			if !ok {
				return []string{""}
			}
			ports := make([]string, 0, len(s.Ports))
			for _, p := range s.Ports {
				ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
			}
			return []string{orDash(strings.Join(ports, ","))}
		},
	},
}

// printObjects prints a list of one kind's resources.
func printObjects(w io.Writer, format outputFormat, kind v1alpha1.Kind, objs []*v1alpha1.Object) error {
	sortObjects(objs)
	switch format {
	case formatJSON:
		if objs == nil {
			objs = []*v1alpha1.Object{}
		}
		return writeIndentedJSON(w, client.ObjectList{Items: objs})
	case formatYAML:
		for i, o := range objs {
			if i > 0 {
				fmt.Fprintln(w, "---")
			}
			if err := writeYAML(w, o); err != nil {
				return err
			}
		}
		return nil
	}
	tw := newTable(w)
	cols := kindColumns[kind.Name]
	headers := []string{"NAME"}
	if kind.Namespaced {
		headers = append([]string{"NAMESPACE"}, headers...)
	}
	writeRow(tw, append(headers, cols.headers...))
	for _, o := range objs {
		row := []string{o.Metadata.Name}
		if kind.Namespaced {
			row = append([]string{o.Metadata.Namespace}, row...)
		}
		if cols.row != nil {
			row = append(row, cols.row(o)...)
		}
		writeRow(tw, row)
	}
	return tw.Flush()
}

// printObject prints one resource.
func printObject(w io.Writer, format outputFormat, kind v1alpha1.Kind, obj *v1alpha1.Object) error {
	switch format {
	case formatJSON:
		return writeIndentedJSON(w, obj)
	case formatYAML:
		return writeYAML(w, obj)
	}
	return printObjects(w, format, kind, []*v1alpha1.Object{obj})
}

// printWorkloads prints registered workloads.
func printWorkloads(w io.Writer, format outputFormat, ws []*meshv1.Workload) error {
	sort.SliceStable(ws, func(i, j int) bool {
		a, b := ws[i], ws[j]
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		if a.GetService() != b.GetService() {
			return a.GetService() < b.GetService()
		}
		return a.GetId() < b.GetId()
	})
	switch format {
	case formatJSON, formatYAML:
		items := make([]json.RawMessage, 0, len(ws))
		for _, wl := range ws {
			b, err := protojson.Marshal(wl)
			if err != nil {
				return fmt.Errorf("encode workload %s: %w", wl.GetId(), err)
			}
			// protojson varies its whitespace on purpose; compact it so output is stable.
			var buf bytes.Buffer
			if err := json.Compact(&buf, b); err != nil {
				return fmt.Errorf("encode workload %s: %w", wl.GetId(), err)
			}
			items = append(items, buf.Bytes())
		}
		if format == formatJSON {
			return writeIndentedJSON(w, client.WorkloadList{Items: items})
		}
		for i, item := range items {
			if i > 0 {
				fmt.Fprintln(w, "---")
			}
			y, err := yaml.JSONToYAML(item)
			if err != nil {
				return fmt.Errorf("encode workload as YAML: %w", err)
			}
			w.Write(y)
		}
		return nil
	}
	tw := newTable(w)
	writeRow(tw, []string{"NAMESPACE", "SERVICE", "VERSION", "ADDRESS", "READY"})
	for _, wl := range ws {
		writeRow(tw, []string{wl.GetNamespace(), wl.GetService(), orDash(wl.GetVersion()),
			wl.GetAddress(), strconv.FormatBool(wl.GetReady())})
	}
	return tw.Flush()
}

// printResult prints what happened to one resource, kubectl style:
// "service/payments created".
func printResult(w io.Writer, r client.ApplyResult) {
	fmt.Fprintf(w, "%s/%s %s\n", strings.ToLower(r.Kind), r.Name, r.Action)
}

// printProblems prints every problem of a rejected apply, one per line,
// as compilers do: "payments.yaml:7: Service default/payments: spec.ports[0].port: ...".
func printProblems(w io.Writer, source string, details []client.ErrorDetail) {
	for _, d := range details {
		var b strings.Builder
		b.WriteString(source)
		if d.Line > 0 {
			fmt.Fprintf(&b, ":%d", d.Line)
		}
		b.WriteString(": ")
		if d.Line == 0 && d.Document > 0 {
			fmt.Fprintf(&b, "document %d: ", d.Document)
		}
		if d.Ref != "" {
			b.WriteString(d.Ref + ": ")
		}
		if d.Field != "" {
			b.WriteString(d.Field + ": ")
		}
		b.WriteString(d.Detail)
		fmt.Fprintln(w, b.String())
	}
}

func sortObjects(objs []*v1alpha1.Object) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i].Metadata, objs[j].Metadata
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0) }

func writeRow(tw *tabwriter.Writer, cells []string) {
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

func writeIndentedJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func writeYAML(w io.Writer, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode YAML: %w", err)
	}
	_, err = w.Write(b)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// durationOrEmpty is the short form of d, or "" when it is unset.
func durationOrEmpty(d v1alpha1.Duration) string {
	if d.Duration == 0 {
		return ""
	}
	return d.String()
}
