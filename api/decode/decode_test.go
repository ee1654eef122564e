package decode

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/v1alpha1"
)

func TestDocuments(t *testing.T) {
	defaultMesh := &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion, Kind: "Mesh",
		Metadata: v1alpha1.ObjectMeta{Name: "default"},
		Spec: &v1alpha1.MeshSpec{
			MTLS:           v1alpha1.MTLS{Mode: v1alpha1.MTLSStrict},
			CertificateTTL: v1alpha1.Duration{Duration: 24 * time.Hour},
		},
	}
	tests := []struct {
		name string
		in   string
		want []*v1alpha1.Object
	}{
		{name: "empty input"},
		{name: "only comments and empty documents", in: "# nothing here\n---\n---\n# still nothing\n"},
		{name: "null document", in: "--- null\n--- ~\n"},
		{name: "mesh with defaults", in: readFile(t, "testdata/mesh-defaults.yaml"), want: []*v1alpha1.Object{defaultMesh}},
		{
			name: "mesh and services",
			in:   readFile(t, "testdata/mixed.yaml"),
			want: []*v1alpha1.Object{
				{
					APIVersion: v1alpha1.APIVersion, Kind: "Mesh",
					Metadata: v1alpha1.ObjectMeta{Name: "default"},
					Spec: &v1alpha1.MeshSpec{
						TrustDomain:    "shop.example.org",
						MTLS:           v1alpha1.MTLS{Mode: v1alpha1.MTLSStrict},
						CertificateTTL: v1alpha1.Duration{Duration: 12 * time.Hour},
					},
				},
				{
					APIVersion: v1alpha1.APIVersion, Kind: "Service",
					Metadata: v1alpha1.ObjectMeta{
						Name: "payments", Namespace: "shop",
						Labels:      map[string]string{"app": "payments", "weft.dev/tier": "backend"},
						Annotations: map[string]string{"owner": "team payments <payments@example.org>"},
					},
					Spec: &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{
						{Name: "grpc", Port: 9090, Protocol: v1alpha1.ProtocolGRPC},
						{Name: "metrics", Port: 9090 + 2, Protocol: v1alpha1.ProtocolHTTP},
					}},
				},
				{
					APIVersion: v1alpha1.APIVersion, Kind: "Service",
					Metadata: v1alpha1.ObjectMeta{Name: "frontend", Namespace: "default"},
					Spec: &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{
						{Port: 8080, Protocol: v1alpha1.ProtocolHTTP},
					}},
				},
			},
		},
		{
			name: "JSON",
			in:   readFile(t, "testdata/service.json"),
			want: []*v1alpha1.Object{{
				APIVersion: v1alpha1.APIVersion, Kind: "Service",
				Metadata: v1alpha1.ObjectMeta{Name: "db", Namespace: "shop"},
				Spec: &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{
					{Name: "pg", Port: 5432, Protocol: v1alpha1.ProtocolTCP},
				}},
			}},
		},
		{
			name: "null and empty optional fields",
			in: `apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata:
  name: default
  labels: {}
  annotations: null
spec: {}
`,
			want: []*v1alpha1.Object{defaultMesh},
		},
		{
			name: "explicit tags, quoting and YAML integer forms",
			in: `apiVersion: !!str weft.dev/v1alpha1
"kind": 'Service'
metadata: {name: "a", labels: {"n": "1", b: "true"}}
spec:
  ports:
  - {port: !!int "80"}
  - {port: 0o17}
  - {port: +1_000}
`,
			want: []*v1alpha1.Object{{
				APIVersion: v1alpha1.APIVersion, Kind: "Service",
				Metadata: v1alpha1.ObjectMeta{Name: "a", Namespace: "default", Labels: map[string]string{"n": "1", "b": "true"}},
				Spec: &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{
					{Port: 80, Protocol: v1alpha1.ProtocolHTTP},
					{Port: 15, Protocol: v1alpha1.ProtocolHTTP},
					{Port: 1000, Protocol: v1alpha1.ProtocolHTTP},
				}},
			}},
		},
		{
			name: "byte order mark and CRLF line ends",
			in:   "\ufeffapiVersion: weft.dev/v1alpha1\r\nkind: Mesh\r\nmetadata:\r\n  name: default\r\n",
			want: []*v1alpha1.Object{defaultMesh},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Documents([]byte(tt.in), "app.yaml")
			if err != nil {
				t.Fatalf("Documents: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Documents:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, tt.want))
			}
		})
	}
}

func TestDocument(t *testing.T) {
	obj, err := Document([]byte(readFile(t, "testdata/service.json")), "db.json")
	if err != nil {
		t.Fatalf("Document: %v", err)
	}
	if got, want := obj.Ref(), "Service shop/db"; got != want {
		t.Errorf("Document gave %s, want %s", got, want)
	}

	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "none", in: "# empty\n", wantErr: "db.yaml: expected exactly one document, found 0"},
		{name: "two", in: readFile(t, "testdata/mixed.yaml"), wantErr: "db.yaml: expected exactly one document, found 3"},
		{name: "bad", in: "kind: Mesh\nmetadata: {name: default}\n", wantErr: `db.yaml: document 1 (Mesh default): apiVersion: is required: use "weft.dev/v1alpha1" (line 1)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := Document([]byte(tt.in), "db.yaml")
			if obj != nil || err == nil || err.Error() != tt.wantErr {
				t.Errorf("Document() = %v, %v; want only the error %q", obj, err, tt.wantErr)
			}
		})
	}
}

// TestSpecTypesDecodable checks that the decoder can walk the spec type of
// every registered kind, so a new kind cannot use a Go type the decoder
// would reject at run time.
func TestSpecTypesDecodable(t *testing.T) {
	for _, k := range v1alpha1.Kinds() {
		checkDecodable(t, k.Name+" spec", reflect.TypeOf(k.NewSpec()).Elem(), map[reflect.Type]bool{})
	}
	checkDecodable(t, "metadata", reflect.TypeFor[v1alpha1.ObjectMeta](), map[reflect.Type]bool{})
}

func checkDecodable(t *testing.T, where string, typ reflect.Type, seen map[reflect.Type]bool) {
	t.Helper()
	if seen[typ] {
		return
	}
	seen[typ] = true
	if reflect.PointerTo(typ).Implements(textUnmarshalerType) {
		return
	}
	if reflect.PointerTo(typ).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		t.Errorf("%s: %s decodes its own JSON, which the YAML decoder cannot follow; implement encoding.TextUnmarshaler", where, typ)
	}
	switch typ.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
	case reflect.Pointer, reflect.Slice:
		checkDecodable(t, where, typ.Elem(), seen)
	case reflect.Map:
		if typ.Key().Kind() != reflect.String {
			t.Errorf("%s: map %s needs string keys", where, typ)
		}
		checkDecodable(t, where, typ.Elem(), seen)
	case reflect.Struct:
		for i := range typ.NumField() {
			if f := typ.Field(i); f.IsExported() || f.Anonymous {
				checkDecodable(t, where+"."+f.Name, f.Type, seen)
			}
		}
	default:
		t.Errorf("%s: the decoder cannot decode Go type %s", where, typ)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
