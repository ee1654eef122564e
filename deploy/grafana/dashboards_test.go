// Package grafana holds the mesh's Grafana dashboards (JSON); its test
// checks every PromQL expression in them against the metrics the proxy and
// the control plane export.
package grafana

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func dashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("%d dashboards, want at least 3", len(files))
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid and title are required", f)
		}
		out[f] = d
	}
	return out
}

// grafanaVars are the variables Grafana itself defines.
var grafanaVars = map[string]string{"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}

var varRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)

// substitute replaces template variables as Grafana would: intervals by a
// duration, the dashboard's own variables by a value. An undefined
// variable is an error.
func substitute(expr string, defined map[string]bool) (string, []string) {
	var undefined []string
	out := varRef.ReplaceAllStringFunc(expr, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if v, ok := grafanaVars[name]; ok {
			return v
		}
		if !defined[name] {
			undefined = append(undefined, name)
		}
		return "value"
	})
	return out, undefined
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// exprs returns every PromQL expression of a dashboard by where it is:
// panel targets, and the selectors of label_values() variables.
func exprs(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for i, tg := range p.Targets {
				if tg.Expr == "" {
					t.Errorf("%s: panel %q target %d has no expression", d.Title, p.Title, i)
					continue
				}
				out["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Fatalf("%s: variable %s: %v", d.Title, v.Name, err)
			}
		}
		m := labelValues.FindStringSubmatch(strings.TrimSpace(q.Query))
		if m == nil {
			t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", d.Title, v.Name, q.Query)
			continue
		}
		out["variable "+v.Name] = m[1]
	}
	return out
}

// exported are the metric names the proxy and the control plane export:
// every weft_ collector named in their code, and the Go and process
// collectors both register.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{"up": true}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		names[f.GetName()] = true
	}
	named := regexp.MustCompile(`Name:\s*"(weft_\w+)"`)
	for _, root := range []string{"../../proxy", "../../controlplane"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range named.FindAllSubmatch(b, -1) {
				names[string(m[1])] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"weft_requests_total", "weft_request_duration_seconds", "weft_xds_pushes_total"} {
		if !names[want] {
			t.Fatalf("the scan of the code found no %s: %v", want, names)
		}
	}
	return names
}

// metricsOf returns the metric names an expression selects.
func metricsOf(e parser.Expr) []string {
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		out = append(out, name)
		return nil
	})
	return out
}

func TestDashboardQueries(t *testing.T) {
	known := exported(t)
	for file, d := range dashboards(t) {
		defined := map[string]bool{}
		for _, v := range d.Templating.List {
			defined[v.Name] = true
		}
		for where, raw := range exprs(t, d) {
			expr, undefined := substitute(raw, defined)
			if len(undefined) > 0 {
				t.Errorf("%s %s: undefined variables %v in %s", file, where, undefined, raw)
			}
			e, err := parser.ParseExpr(expr)
			if err != nil {
				t.Errorf("%s %s: %v\n%s", file, where, err, expr)
				continue
			}
			metrics := metricsOf(e)
			if len(metrics) == 0 {
				t.Errorf("%s %s selects no metric: %s", file, where, raw)
			}
			for _, m := range metrics {
				base := m
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(m, suffix); ok && known[b] {
						base = b
					}
				}
				if !known[base] {
					t.Errorf("%s %s: metric %s is not exported by the proxy or the control plane", file, where, m)
				}
			}
		}
	}
}

func TestSubstitute(t *testing.T) {
	got, undefined := substitute(`rate(x{a="$ns",b=~"${svc}",c="${svc:regex}"}[$__rate_interval]) + $nope`, map[string]bool{"ns": true, "svc": true})
	if got != `rate(x{a="value",b=~"value",c="value"}[1m]) + value` || !slices.Equal(undefined, []string{"nope"}) {
		t.Errorf("substitute = %q, %v", got, undefined)
	}
}

// TestParserIsTestOnly keeps the Prometheus server module out of the
// binaries: it is here to check dashboards, nothing else.
func TestParserIsTestOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/weftmesh/weft/cmd/weft", "github.com/weftmesh/weft/cmd/weft-proxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/prometheus/prometheus/") {
			t.Errorf("%s is linked into weft or weft-proxy", pkg)
		}
	}
}
