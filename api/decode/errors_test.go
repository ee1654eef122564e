package decode

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// header starts a good Service document; the ports follow on line 6.
const header = `apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: payments
spec:
`

func TestDocumentsErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // Error(), one line per problem
	}{
		// Unknown fields.
		{
			name: "unknown field with a suggestion",
			in:   header + "  ports:\n  - port: 80\n    protocl: grpc\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports[0].protocl: unknown field; did you mean "protocol"? (line 8)`,
		},
		{
			name: "unknown field in another case",
			in:   header + "  Ports: []\n",
			want: `app.yaml: document 1 (Service default/payments): spec.Ports: unknown field; did you mean "ports"? (line 6)`,
		},
		{
			name: "unknown field without a suggestion",
			in:   header + "  ports: [{port: 80}]\n  replicas: 3\n",
			want: `app.yaml: document 1 (Service default/payments): spec.replicas: unknown field (line 7)`,
		},
		{
			name: "unknown top-level field",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetdata:\n  name: default\n",
			want: `app.yaml: document 1 (Mesh): metdata: unknown field; did you mean "metadata"? (line 3)`,
		},
		{
			name: "unknown field that is not an identifier",
			in:   header + "  ports: [{port: 80}]\n  \"a b\": 1\n",
			want: `app.yaml: document 1 (Service default/payments): spec["a b"]: unknown field (line 7)`,
		},

		// Types.
		{
			name: "string for an integer",
			in:   header + "  ports:\n  - port: abc\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports[0].port: expected an integer, got string "abc" (line 7)`,
		},
		{
			name: "quoted integer",
			in:   header + "  ports:\n  - port: \"80\"\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports[0].port: expected an integer, got string "80" (line 7)`,
		},
		{
			name: "float for an integer",
			in:   header + "  ports:\n  - port: 80.5\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports[0].port: expected an integer, got number 80.5 (line 7)`,
		},
		{
			name: "number for a string, with a hint",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\n  labels:\n    version: 1.0\n    canary: true\n",
			want: `app.yaml: document 1 (Mesh default): metadata.labels["version"]: expected a string, got number 1.0 (write "1.0" for a string) (line 6)` + "\n" +
				`app.yaml: document 1 (Mesh default): metadata.labels["canary"]: expected a string, got boolean true (write "true" for a string) (line 7)`,
		},
		{
			name: "mapping for a list",
			in:   header + "  ports:\n    port: 80\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports: expected a list, got mapping (line 7)`,
		},
		{
			name: "list for a mapping",
			in:   header + "  - port: 80\n",
			want: `app.yaml: document 1 (Service default/payments): spec: expected a mapping, got list (line 6)`,
		},
		{
			name: "list for a string",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: [default]\n",
			want: `app.yaml: document 1 (Mesh): metadata.name: expected a string, got list (line 4)`,
		},
		{
			name: "timestamp for a string",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\n  annotations:\n    since: 2024-01-01\n",
			want: `app.yaml: document 1 (Mesh default): metadata.annotations["since"]: expected a string, got timestamp 2024-01-01 (write "2024-01-01" for a string) (line 6)`,
		},
		{
			name: "bad duration",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\nspec:\n  certificateTTL: 24\n",
			want: `app.yaml: document 1 (Mesh default): spec.certificateTTL: invalid duration "24" (want for example "30s", "5m", "24h") (line 6)`,
		},
		{
			name: "mapping for a duration",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\nspec:\n  certificateTTL: {hours: 24}\n",
			want: `app.yaml: document 1 (Mesh default): spec.certificateTTL: expected a string, got mapping (line 6)`,
		},
		{
			name: "integer key for a map of strings",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\n  labels:\n    1: one\n",
			want: `app.yaml: document 1 (Mesh default): metadata.labels: expected a string key, got integer 1 (write "1" for a string) (line 6)`,
		},
		{
			name: "mapping key",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\n  labels:\n    ? {a: b}\n    : c\n",
			want: `app.yaml: document 1 (Mesh default): metadata.labels: expected a string key, got mapping (line 6)`,
		},

		// Integer range.
		{
			name: "int32 overflow",
			in:   header + "  ports:\n  - port: 99999999999\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports[0].port: integer 99999999999 is out of range for int32 (line 7)`,
		},
		{
			name: "int32 underflow",
			in:   header + "  ports:\n  - port: -2147483649\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports[0].port: integer -2147483649 is out of range for int32 (line 7)`,
		},
		{
			name: "beyond 64 bits",
			in:   header + "  ports:\n  - port: 123456789012345678901234567890\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports[0].port: integer 123456789012345678901234567890 is out of range for int32 (line 7)`,
		},
		{
			name: "int64 overflow",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\n  resourceVersion: 9223372036854775808\n",
			want: `app.yaml: document 1 (Mesh default): metadata.resourceVersion: integer 9223372036854775808 is out of range for int64 (line 5)`,
		},

		// Duplicates.
		{
			name: "duplicate field",
			in:   header + "  ports:\n  - port: 80\n    port: 81\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports[0].port: duplicate key: already set on line 7 (line 8)`,
		},
		{
			name: "duplicate map key",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\n  labels: {app: a, app: b}\n",
			want: `app.yaml: document 1 (Mesh default): metadata.labels["app"]: duplicate key: already set on line 5 (line 5)`,
		},
		{
			name: "duplicate top-level field",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nkind: Service\nmetadata:\n  name: default\n",
			want: `app.yaml: document 1 (Mesh default): kind: duplicate key: already set on line 2 (line 3)`,
		},
		{
			name: "duplicate JSON key",
			in:   `{"apiVersion": "weft.dev/v1alpha1", "kind": "Mesh", "metadata": {"name": "default", "name": "x"}}`,
			want: `app.yaml: document 1 (Mesh default): metadata.name: duplicate key: already set on line 1 (line 1)`,
		},

		// Null.
		{
			name: "null integer",
			in:   header + "  ports:\n  - port: null\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports[0].port: expected an integer, got null (line 7)`,
		},
		{
			name: "empty value for a string",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name:\n",
			want: `app.yaml: document 1 (Mesh): metadata.name: expected a string, got null (line 4)`,
		},
		{
			name: "null spec",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\nspec: ~\n",
			want: `app.yaml: document 1 (Mesh default): spec: expected a mapping, got null (line 5)`,
		},
		{
			name: "null list element",
			in:   header + "  ports:\n  -\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports[0]: expected a mapping, got null (line 7)`,
		},

		// Envelope.
		{
			name: "document that is not a mapping",
			in:   "just text\n",
			want: `app.yaml: document 1: expected a mapping with apiVersion, kind, metadata and spec, got string "just text" (line 1)`,
		},
		{
			name: "document that is a list",
			in:   "- apiVersion: weft.dev/v1alpha1\n",
			want: `app.yaml: document 1: expected a mapping with apiVersion, kind, metadata and spec, got list (line 1)`,
		},
		{
			name: "missing apiVersion and kind",
			in:   "metadata:\n  name: default\n",
			want: `app.yaml: document 1 (default): apiVersion: is required: use "weft.dev/v1alpha1" (line 1)` + "\n" +
				`app.yaml: document 1 (default): kind: is required: one of ` + registeredKinds + ` (line 1)`,
		},
		{
			name: "unknown apiVersion",
			in:   "apiVersion: weft.dev/v1\nkind: Mesh\nmetadata:\n  name: default\n",
			want: `app.yaml: document 1 (Mesh default): apiVersion: unsupported value "weft.dev/v1": must be "weft.dev/v1alpha1" (line 1)`,
		},
		{
			name: "misspelt kind",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Servce\nmetadata:\n  name: a\nspec:\n  anything: 1\n",
			want: `app.yaml: document 1 (Servce a): kind: unknown kind "Servce": must be one of ` + registeredKinds + `; did you mean "Service"? (line 2)`,
		},
		{
			name: "kind written as the CLI alias",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: svc\nmetadata:\n  name: a\n",
			want: `app.yaml: document 1 (svc a): kind: unknown kind "svc": must be one of ` + registeredKinds + `; did you mean "Service"? (line 2)`,
		},
		{
			name: "unknown kind",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Widget\nmetadata:\n  name: a\n",
			want: `app.yaml: document 1 (Widget a): kind: unknown kind "Widget": must be one of ` + registeredKinds + ` (line 2)`,
		},
		{
			name: "kind that is not a string",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: {name: Mesh}\nmetadata:\n  name: default\n",
			want: `app.yaml: document 1 (default): kind: expected a string, got mapping (line 2)`,
		},

		// What the decoder refuses.
		{
			name: "anchors and aliases",
			in:   readFile(t, "testdata/anchors.yaml"),
			want: `app.yaml: document 1: YAML anchors and aliases are not supported (line 5)` + "\n" +
				`app.yaml: document 1: YAML anchors and aliases are not supported (line 9)` + "\n" +
				`app.yaml: document 1: YAML anchors and aliases are not supported (line 10)`,
		},
		{
			name: "merge key",
			in:   header + "  ports:\n  - <<: {port: 80}\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports[0]: merge keys (<<) are not supported (line 7)`,
		},
		{
			name: "custom tag",
			in:   header + "  ports: !Ports [{port: 80}]\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports: unsupported YAML tag "!Ports" (line 6)`,
		},

		// Validation, with the line of the field or of its nearest ancestor.
		{
			name: "validation error on a field",
			in:   header + "  ports:\n  - port: 80\n  - port: 70000\n    protocol: udp\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports[1].port: must be between 1 and 65535 (line 8)` + "\n" +
				`app.yaml: document 1 (Service default/payments): spec.ports[1].protocol: unsupported value "udp": must be one of http, http2, grpc, tcp (line 9)`,
		},
		{
			name: "validation error on an absent field",
			in:   header + "  ports: []\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports: at least one port is required (line 6)`,
		},
		{
			name: "validation error below an absent field",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata:\n  name: payments\n",
			want: `app.yaml: document 1 (Service default/payments): spec.ports: at least one port is required (line 1)`,
		},
		{
			name: "validation error sorted by line",
			in: "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: prod\n  labels:\n    app: -x\n" +
				"spec:\n  certificateTTL: 1s\n  trustDomain: A\n",
			want: `app.yaml: document 1 (Mesh prod): metadata.name: must be "default", the only name a Mesh may have (line 4)` + "\n" +
				`app.yaml: document 1 (Mesh prod): metadata.labels["app"]: invalid label value "-x": use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit (line 6)` + "\n" +
				`app.yaml: document 1 (Mesh prod): spec.certificateTTL: must be between 1m and 720h, got 1s (line 8)` + "\n" +
				`app.yaml: document 1 (Mesh prod): spec.trustDomain: "A" is not a valid trust domain: use a lowercase DNS name (letters, digits, '-' and '.', at most 255 characters) (line 9)`,
		},
		{
			name: "read and validation errors together",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata:\n  name: Bad_Name\n  labels: {v: 1.0}\nspec:\n  ports: {port: 80}\n",
			want: `app.yaml: document 1 (Service default/Bad_Name): metadata.name: "Bad_Name" is not a valid name: use a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters (line 4)` + "\n" +
				`app.yaml: document 1 (Service default/Bad_Name): metadata.labels["v"]: expected a string, got number 1.0 (write "1.0" for a string) (line 5)` + "\n" +
				`app.yaml: document 1 (Service default/Bad_Name): spec.ports: expected a list, got mapping (line 7)`,
		},
		{
			name: "no validation error for a misspelt field",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata:\n  name: a\nspec:\n  prots:\n  - port: 80\n",
			want: `app.yaml: document 1 (Service default/a): spec.prots: unknown field; did you mean "ports"? (line 6)`,
		},
		{
			name: "cluster-scoped kind with a namespace",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\n  namespace: shop\n",
			want: `app.yaml: document 1 (Mesh default): metadata.namespace: must be empty: Mesh is cluster-scoped (line 5)`,
		},

		// Several documents.
		{
			name: "every bad document is reported",
			in:   readFile(t, "testdata/bad.yaml"),
			want: `app.yaml: document 1 (Service default/payments): metadata.labels["version"]: expected a string, got number 1.0 (write "1.0" for a string) (line 6)` + "\n" +
				`app.yaml: document 1 (Service default/payments): spec.ports[0].port: expected an integer, got string "abc" (line 9)` + "\n" +
				`app.yaml: document 1 (Service default/payments): spec.ports[0].protocl: unknown field; did you mean "protocol"? (line 10)` + "\n" +
				`app.yaml: document 1 (Service default/payments): spec.ports[1].port: integer 99999999999 is out of range for int32 (line 11)` + "\n" +
				`app.yaml: document 1 (Service default/payments): spec.ports[1].name: duplicate key: already set on line 12 (line 13)` + "\n" +
				`app.yaml: document 2 (Service default/orders): spec.ports[0].port: must be between 1 and 65535 (line 21)` + "\n" +
				`app.yaml: document 2 (Service default/orders): spec.ports[0].protocol: unsupported value "udp": must be one of http, http2, grpc, tcp (line 22)` + "\n" +
				`app.yaml: document 3 (svc x): apiVersion: is required: use "weft.dev/v1alpha1" (line 24)` + "\n" +
				`app.yaml: document 3 (svc x): kind: unknown kind "svc": must be one of ` + registeredKinds + `; did you mean "Service"? (line 24)`,
		},
		{
			name: "documents are counted without the empty ones",
			in:   "---\n---\nkind: Mesh\n",
			want: `app.yaml: document 1 (Mesh): apiVersion: is required: use "weft.dev/v1alpha1" (line 3)` + "\n" +
				`app.yaml: document 1 (Mesh): metadata.name: is required (line 3)`,
		},

		// Syntax.
		{
			name: "syntax error",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\n metadata: {}\n",
			want: `app.yaml: syntax error: mapping values are not allowed in this context (line 3)`,
		},
		{
			name: "syntax error on the first line",
			in:   "kind: Mesh: x\n",
			want: `app.yaml: syntax error: mapping values are not allowed in this context (line 1)`,
		},
		{
			name: "tab indentation",
			in:   "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n\tname: default\n",
			want: `app.yaml: syntax error: found character that cannot start any token (line 4)`,
		},
		{
			name: "syntax error after a bad document",
			in:   "kind: Mesh\n---\nspec: [\n",
			want: `app.yaml: document 1 (Mesh): apiVersion: is required: use "weft.dev/v1alpha1" (line 1)` + "\n" +
				`app.yaml: document 1 (Mesh): metadata.name: is required (line 1)` + "\n" +
				`app.yaml: syntax error: did not find expected node content (line 3)`,
		},
		{
			name: "control characters in strings",
			in: "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\n  annotations:\n" +
				"    a: \"\\e[31m\"\n    b: \"\\N\"\n    \"\\x7f\": c\n    d: \"tab\\tand\\nnewline\"\n",
			want: `app.yaml: document 1 (Mesh default): metadata.annotations["a"]: control character U+001B is not allowed (line 6)` + "\n" +
				`app.yaml: document 1 (Mesh default): metadata.annotations["b"]: control character U+0085 is not allowed (line 7)` + "\n" +
				`app.yaml: document 1 (Mesh default): metadata.annotations: control character U+007F is not allowed (line 8)`,
		},
		{
			name: "not UTF-8",
			in:   "kind: Mesh\nmetadata:\n  name: \xff\n",
			want: `app.yaml: input is not valid UTF-8 (line 3)`,
		},
		{
			name: "control character",
			in:   "kind: Mesh\r\nmetadata:\r\n  name: a\x07\n",
			want: `app.yaml: control character U+0007 is not allowed (line 3)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Documents([]byte(tt.in), "app.yaml")
			if objs != nil {
				t.Errorf("Documents returned %d objects with its error; want none", len(objs))
			}
			if err == nil {
				t.Fatalf("Documents: no error, want\n%s", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Documents error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestErrorStructure(t *testing.T) {
	in := "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\n---\n" +
		header + "  ports:\n  - port: 0\n---\nkind: Mesh: x\n"
	_, err := Documents([]byte(in), "app.yaml")
	var derr *Error
	if !errors.As(err, &derr) {
		t.Fatalf("Documents error is %T (%v), want *Error", err, err)
	}
	got, err := json.Marshal(derr)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"source":"app.yaml",` +
		`"documents":[{"index":2,"line":6,"ref":"Service default/payments","errors":[{"field":"spec.ports[0].port","line":12,"detail":"must be between 1 and 65535"}]}],` +
		`"errors":[{"line":14,"detail":"syntax error: mapping values are not allowed in this context"}]}`
	if string(got) != want {
		t.Errorf("JSON of the error:\n%s\nwant\n%s", got, want)
	}
}

func TestLimits(t *testing.T) {
	mesh := "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\n"
	badPorts := header + "  ports:\n" + strings.Repeat("  - port: x\n", 150)
	tests := []struct {
		name string
		in   string
		want string // the last line of Error()
	}{
		{
			name: "input too large",
			in:   mesh + "# " + strings.Repeat("x", MaxInputSize) + "\n",
			want: "app.yaml: input is 1048646 bytes, more than the limit of 1048576 (1 MiB); split it into several files",
		},
		{
			name: "too many documents",
			in:   strings.Repeat("---\n", MaxDocuments) + "---\n" + mesh,
			want: "app.yaml: more than 500 documents; split the input into several files (line 501)",
		},
		{
			name: "too many problems in one document",
			in:   badPorts,
			want: "app.yaml: too many problems: only the first 100 are listed",
		},
		{
			name: "too many problems across documents",
			in:   strings.Repeat("kind: Mesh\n---\n", 200),
			want: "app.yaml: too many problems: only the first 100 are listed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Documents([]byte(tt.in), "app.yaml")
			if err == nil {
				t.Fatal("Documents: no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if got := lines[len(lines)-1]; got != tt.want {
				t.Errorf("last line of the error: %q, want %q", got, tt.want)
			}
			var derr *Error
			if errors.As(err, &derr) && derr.problems() > maxProblems+1 {
				t.Errorf("%d problems reported, want at most %d", derr.problems(), maxProblems+1)
			}
		})
	}
}

// registeredKinds lists the registered kinds as validation errors name
// them, so that adding a kind does not rewrite every expected message.
var registeredKinds = func() string {
	var names []string
	for _, k := range v1alpha1.Kinds() {
		names = append(names, k.Name)
	}
	return strings.Join(names, ", ")
}()
