package decode

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// sample has a field of every shape a spec type may use, to test the walk
// beyond the shapes today's kinds happen to have.
type sample struct {
	Embedded
	Name     string              `json:"name,omitempty"`
	Enabled  bool                `json:"enabled"`
	Count    *int32              `json:"count,omitempty"`
	Weight   uint8               `json:"weight"`
	Fraction float32             `json:"fraction"`
	Ratio    float64             `json:"ratio"`
	Timeout  v1alpha1.Duration   `json:"timeout"`
	Retry    *v1alpha1.Duration  `json:"retry,omitempty"`
	Headers  map[string]string   `json:"headers,omitempty"`
	Nested   nested              `json:"nested"`
	Items    []nested            `json:"items,omitempty"`
	Optional *nested             `json:"optional,omitempty"`
	Tags     map[string][]string `json:"tags,omitempty"`
	Ignored  string              `json:"-"`
	hidden   string
	NoTag    string
}

type Embedded struct {
	Inline string `json:"inline"`
}

type nested struct {
	Value int `json:"value"`
}

func decodeSample(t *testing.T, in string) (sample, []string) {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(in), &root); err != nil {
		t.Fatalf("parse %q: %v", in, err)
	}
	var s sample
	d := &decoder{limit: maxProblems, lines: make(map[string]int)}
	d.value(root.Content[0], reflect.ValueOf(&s).Elem(), v1alpha1.NewPath("spec"))
	var errs []string
	for _, fe := range d.errs {
		errs = append(errs, fe.Error())
	}
	return s, errs
}

func TestDecodeValues(t *testing.T) {
	count := int32(-7)
	tests := []struct {
		name string
		in   string
		want sample
	}{
		{name: "empty mapping", in: "{}"},
		{
			name: "every shape",
			in: `
inline: flat
name: a
enabled: true
count: -7
weight: 255
fraction: 0.5
ratio: 1e3
timeout: 1m30s
retry: 2s
headers: {x-a: "1"}
nested: {value: 3}
items: [{value: 1}, {value: 2}]
optional: {value: 4}
tags: {a: [x, y]}
NoTag: by Go name
`,
			want: sample{
				Embedded: Embedded{Inline: "flat"},
				Name:     "a", Enabled: true, Count: &count, Weight: 255, Fraction: 0.5, Ratio: 1000,
				Timeout: v1alpha1.Duration{Duration: 90 * time.Second},
				Retry:   &v1alpha1.Duration{Duration: 2 * time.Second},
				Headers: map[string]string{"x-a": "1"},
				Nested:  nested{Value: 3}, Items: []nested{{Value: 1}, {Value: 2}}, Optional: &nested{Value: 4},
				Tags:  map[string][]string{"a": {"x", "y"}},
				NoTag: "by Go name",
			},
		},
		{
			name: "null leaves pointers, maps and slices nil",
			in:   "count: null\nretry: ~\nheaders:\nitems: null\noptional: null\n",
		},
		{
			name: "empty maps and slices stay nil",
			in:   "headers: {}\nitems: []\ntags: {}\n",
		},
		{
			name: "an integer is a number",
			in:   "ratio: 2\n",
			want: sample{Ratio: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := decodeSample(t, tt.in)
			if len(errs) > 0 {
				t.Fatalf("errors: %s", strings.Join(errs, "; "))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestDecodeValueErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "boolean", in: "enabled: yes", want: `spec.enabled: expected a boolean, got string "yes" (line 1)`},
		{name: "boolean null", in: "enabled: null", want: `spec.enabled: expected a boolean, got null (line 1)`},
		{name: "unsigned overflow", in: "weight: 256", want: `spec.weight: integer 256 is out of range for uint8 (line 1)`},
		{name: "unsigned negative", in: "weight: -1", want: `spec.weight: integer -1 is out of range for uint8 (line 1)`},
		{name: "pointer to integer", in: "count: 1.5", want: `spec.count: expected an integer, got number 1.5 (line 1)`},
		{name: "float32 overflow", in: "fraction: 1e39", want: `spec.fraction: number 1e39 is out of range for float32 (line 1)`},
		{name: "infinity", in: "ratio: .inf", want: `spec.ratio: number .inf is out of range for float64 (line 1)`},
		{name: "not a number", in: "ratio: .nan", want: `spec.ratio: number .nan is out of range for float64 (line 1)`},
		{name: "string for a number", in: "ratio: half", want: `spec.ratio: expected a number, got string "half" (line 1)`},
		{name: "pointer to duration", in: "retry: [1s]", want: `spec.retry: expected a string, got list (line 1)`},
		{name: "nested", in: "nested:\n  value: x", want: `spec.nested.value: expected an integer, got string "x" (line 2)`},
		{name: "list element", in: "items:\n- value: 1\n- valeu: 2", want: `spec.items[1].valeu: unknown field; did you mean "value"? (line 3)`},
		{name: "map of lists", in: "tags: {a: x}", want: `spec.tags["a"]: expected a list, got string "x" (line 1)`},
		{name: "field named -", in: "Ignored: x", want: `spec.Ignored: unknown field (line 1)`},
		{name: "unexported field", in: "hidden: x", want: `spec.hidden: unknown field (line 1)`},
		{name: "binary", in: "name: !!binary aGk=", want: `spec.name: expected a string, got value "aGk=" tagged !!binary (line 1)`},
		{
			name: "long values are cut short",
			in:   "name: [" + strings.Repeat("x", 100) + "]\nweight: " + strings.Repeat("9", 100),
			want: `spec.name: expected a string, got list (line 1); spec.weight: integer ` + strings.Repeat("9", 64) + `... is out of range for uint8 (line 2)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, errs := decodeSample(t, tt.in)
			if s.hidden != "" {
				t.Errorf("an unexported field was set to %q", s.hidden)
			}
			if got := strings.Join(errs, "; "); got != tt.want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestLineOf(t *testing.T) {
	d := &decoder{lines: map[string]int{
		"":                       1,
		"spec":                   5,
		"spec.ports":             6,
		"spec.ports[1]":          9,
		"spec.ports[1].port":     9,
		"spec.portsExtra":        20,
		`metadata.labels["a.b"]`: 3,
	}}
	tests := []struct {
		path string
		want int
	}{
		{path: "spec.ports[1].port", want: 9},
		{path: "spec.ports[1].protocol", want: 9},
		{path: "spec.ports[0].port", want: 6},
		{path: "spec.portsX", want: 5},
		{path: "spec", want: 5},
		{path: "metadata.name", want: 1},
		{path: `metadata.labels["a.b"]`, want: 3},
	}
	for _, tt := range tests {
		if got := d.lineOf(tt.path); got != tt.want {
			t.Errorf("lineOf(%q) = %d, want %d", tt.path, got, tt.want)
		}
	}
}
