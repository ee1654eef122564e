package v1alpha1

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func service(name string, ports ...ServicePort) *Object {
	return &Object{
		APIVersion: APIVersion,
		Kind:       "Service",
		Metadata:   ObjectMeta{Name: name},
		Spec:       &ServiceSpec{Ports: ports},
	}
}

func mesh() *Object {
	return &Object{APIVersion: APIVersion, Kind: "Mesh", Metadata: ObjectMeta{Name: "default"}}
}

func TestObjectDefault(t *testing.T) {
	tests := []struct {
		name string
		obj  *Object
		want *Object
	}{
		{
			name: "namespaced kind gets the default namespace",
			obj:  service("payments", ServicePort{Port: 80}),
			want: &Object{
				APIVersion: APIVersion, Kind: "Service",
				Metadata: ObjectMeta{Name: "payments", Namespace: "default"},
				Spec:     &ServiceSpec{Ports: []ServicePort{{Port: 80, Protocol: ProtocolHTTP}}},
			},
		},
		{
			name: "a namespace already set is kept",
			obj:  &Object{Kind: "Service", Metadata: ObjectMeta{Name: "a", Namespace: "shop"}, Spec: &ServiceSpec{}},
			want: &Object{Kind: "Service", Metadata: ObjectMeta{Name: "a", Namespace: "shop"}, Spec: &ServiceSpec{}},
		},
		{
			name: "cluster-scoped kind gets no namespace and an empty spec is made",
			obj:  mesh(),
			want: &Object{
				APIVersion: APIVersion, Kind: "Mesh", Metadata: ObjectMeta{Name: "default"},
				Spec: &MeshSpec{MTLS: MTLS{Mode: MTLSStrict}, CertificateTTL: Duration{24 * time.Hour}},
			},
		},
		{
			name: "a typed nil spec is replaced",
			obj:  &Object{Kind: "Mesh", Spec: (*MeshSpec)(nil)},
			want: &Object{Kind: "Mesh", Spec: &MeshSpec{MTLS: MTLS{Mode: MTLSStrict}, CertificateTTL: Duration{24 * time.Hour}}},
		},
		{
			name: "unknown kind is left alone",
			obj:  &Object{Kind: "Widget", Metadata: ObjectMeta{Name: "r"}},
			want: &Object{Kind: "Widget", Metadata: ObjectMeta{Name: "r"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.obj.Default()
			if !reflect.DeepEqual(tt.obj, tt.want) {
				t.Errorf("after Default:\n got %s\nwant %s", mustJSON(t, tt.obj), mustJSON(t, tt.want))
			}
		})
	}
}

func TestObjectValidate(t *testing.T) {
	tests := []struct {
		name string
		obj  *Object
		// raw validates obj as it is, without calling Default first.
		raw  bool
		want []string
	}{
		{name: "good service", obj: service("payments", ServicePort{Port: 8080})},
		{name: "good mesh", obj: mesh()},
		{
			name: "labels and annotations",
			obj: func() *Object {
				o := service("a", ServicePort{Port: 1})
				o.Metadata.Labels = map[string]string{"app": "a", "weft.dev/tier": "", "version": "v1.2_3-x"}
				o.Metadata.Annotations = map[string]string{"example.com/note": "any text at all\n"}
				return o
			}(),
		},
		{
			name: "envelope",
			obj:  &Object{APIVersion: "weft.dev/v1", Kind: "Widget", Metadata: ObjectMeta{Name: "r"}},
			want: []string{
				`apiVersion: unsupported value "weft.dev/v1": must be "weft.dev/v1alpha1"`,
				`kind: unknown kind "Widget": must be one of ` + kindList(),
			},
		},
		{
			name: "missing apiVersion, kind and name",
			obj:  &Object{},
			want: []string{
				`apiVersion: is required: use "weft.dev/v1alpha1"`,
				`kind: is required: one of ` + kindList(),
				`metadata.name: is required`,
			},
		},
		{
			name: "bad names",
			obj: func() *Object {
				o := service("Payments_v2", ServicePort{Port: 1})
				o.Metadata.Namespace = "-shop"
				return o
			}(),
			want: []string{
				`metadata.name: "Payments_v2" is not a valid name: use ` + dnsLabelRule,
				`metadata.namespace: "-shop" is not a valid namespace: use ` + dnsLabelRule,
			},
		},
		{
			name: "name too long",
			obj:  service(strings.Repeat("a", 64), ServicePort{Port: 1}),
			want: []string{`metadata.name: "` + strings.Repeat("a", 64) + `" is not a valid name: use ` + dnsLabelRule},
		},
		{
			name: "namespace missing",
			obj:  &Object{APIVersion: APIVersion, Kind: "Service", Metadata: ObjectMeta{Name: "a"}, Spec: &ServiceSpec{Ports: []ServicePort{{Port: 1, Protocol: ProtocolTCP}}}},
			raw:  true,
			want: []string{`metadata.namespace: is required`},
		},
		{
			name: "mesh with another name and a namespace",
			obj:  &Object{APIVersion: APIVersion, Kind: "Mesh", Metadata: ObjectMeta{Name: "prod", Namespace: "default"}},
			want: []string{
				`metadata.name: must be "default", the only name a Mesh may have`,
				`metadata.namespace: must be empty: Mesh is cluster-scoped`,
			},
		},
		{
			name: "bad labels and annotations",
			obj: func() *Object {
				o := service("a", ServicePort{Port: 1})
				o.Metadata.Labels = map[string]string{"app": "has space", "Bad/key": "x", "ok": "-x"}
				o.Metadata.Annotations = map[string]string{"/x": "y"}
				o.Metadata.ResourceVersion = -1
				return o
			}(),
			want: []string{
				`metadata.labels["Bad/key"]: invalid label key: use ` + labelKeyRule,
				`metadata.labels["app"]: invalid label value "has space": use ` + labelNameRule,
				`metadata.labels["ok"]: invalid label value "-x": use ` + labelNameRule,
				`metadata.annotations["/x"]: invalid annotation key: use ` + labelKeyRule,
				`metadata.resourceVersion: must not be negative`,
			},
		},
		{
			name: "spec missing",
			obj:  &Object{APIVersion: APIVersion, Kind: "Mesh", Metadata: ObjectMeta{Name: "default"}},
			raw:  true,
			want: []string{`spec: is required`},
		},
		{
			name: "spec of another kind",
			obj:  &Object{APIVersion: APIVersion, Kind: "Mesh", Metadata: ObjectMeta{Name: "default"}, Spec: &ServiceSpec{}},
			raw:  true,
			want: []string{`spec: is a *v1alpha1.ServiceSpec, but a Mesh needs a *v1alpha1.MeshSpec`},
		},
		{
			name: "spec errors come last, under spec",
			obj:  service("a"),
			want: []string{`spec.ports: at least one port is required`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.raw {
				tt.obj.Default()
			}
			assertErrors(t, tt.obj.Validate(), tt.want)
		})
	}
}

func assertErrors(t *testing.T, errs ErrorList, want []string) {
	t.Helper()
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestObjectRef(t *testing.T) {
	tests := []struct {
		obj  *Object
		want string
	}{
		{obj: &Object{Kind: "Service", Metadata: ObjectMeta{Name: "payments", Namespace: "shop"}}, want: "Service shop/payments"},
		{obj: &Object{Kind: "Service", Metadata: ObjectMeta{Name: "payments"}}, want: "Service default/payments"},
		{obj: &Object{Kind: "Mesh", Metadata: ObjectMeta{Name: "default"}}, want: "Mesh default"},
		{obj: &Object{Kind: "Widget", Metadata: ObjectMeta{Name: "r", Namespace: "x"}}, want: "Widget r"},
		{obj: &Object{Kind: "Service"}, want: "Service"},
		{obj: &Object{Metadata: ObjectMeta{Name: "a"}}, want: "a"},
		{obj: &Object{}, want: ""},
	}
	for _, tt := range tests {
		if got := tt.obj.Ref(); got != tt.want {
			t.Errorf("Ref() = %q, want %q", got, tt.want)
		}
	}
}

func TestObjectKindInfo(t *testing.T) {
	if k := service("a").KindInfo(); k.Name != "Service" || !k.Namespaced {
		t.Errorf("KindInfo() of a Service = %+v", k)
	}
	if k := (&Object{Kind: "svc"}).KindInfo(); k.Name != "" {
		t.Errorf("KindInfo() of kind svc = %q, want the zero Kind: an object's kind is its exact Name", k.Name)
	}
}

func TestObjectJSONRoundTrip(t *testing.T) {
	objs := []*Object{service("payments", ServicePort{Name: "grpc", Port: 9090, Protocol: ProtocolGRPC}), mesh()}
	objs[0].Metadata.Labels = map[string]string{"app": "payments"}
	objs[1].Spec = &MeshSpec{TrustDomain: "example.org", CertificateTTL: Duration{90 * time.Minute}}
	for _, o := range objs {
		o.Default()
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatalf("Marshal(%s): %v", o.Ref(), err)
		}
		var back Object
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("Unmarshal(%s): %v", b, err)
		}
		if !reflect.DeepEqual(&back, o) {
			t.Errorf("round trip of %s:\n got %s\nwant %s", o.Ref(), mustJSON(t, &back), b)
		}
	}
}

func TestObjectMarshalJSON(t *testing.T) {
	o := service("payments", ServicePort{Port: 80})
	o.Default()
	want := `{"apiVersion":"weft.dev/v1alpha1","kind":"Service","metadata":{"name":"payments","namespace":"default"},"spec":{"ports":[{"port":80,"protocol":"http"}]}}`
	for _, v := range []any{o, *o} {
		if got := mustJSON(t, v); got != want {
			t.Errorf("Marshal(%T) = %s\nwant %s", v, got, want)
		}
	}
	m := mesh()
	m.Default()
	want = `{"apiVersion":"weft.dev/v1alpha1","kind":"Mesh","metadata":{"name":"default"},"spec":{"mtls":{"mode":"STRICT"},"certificateTTL":"24h"}}`
	if got := mustJSON(t, m); got != want {
		t.Errorf("Marshal(Mesh) = %s\nwant %s", got, want)
	}
}

func TestObjectUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *Object
		wantErr string
	}{
		{
			name: "no spec gives an empty one",
			in:   `{"apiVersion":"weft.dev/v1alpha1","kind":"Mesh","metadata":{"name":"default"}}`,
			want: &Object{APIVersion: APIVersion, Kind: "Mesh", Metadata: ObjectMeta{Name: "default"}, Spec: &MeshSpec{}},
		},
		{
			name: "null spec gives an empty one",
			in:   `{"kind":"Service","spec":null}`,
			want: &Object{Kind: "Service", Spec: &ServiceSpec{}},
		},
		{
			name: "unknown fields are ignored",
			in:   `{"kind":"Service","extra":1,"spec":{"ports":[{"port":1,"future":true}]}}`,
			want: &Object{Kind: "Service", Spec: &ServiceSpec{Ports: []ServicePort{{Port: 1}}}},
		},
		{
			name:    "unknown kind",
			in:      `{"kind":"Widget"}`,
			wantErr: `v1alpha1: decode object: unknown kind "Widget" (known kinds: ` + kindList() + ")",
		},
		{
			name:    "bad spec",
			in:      `{"kind":"Mesh","metadata":{"name":"default"},"spec":{"certificateTTL":"soon"}}`,
			wantErr: `v1alpha1: decode spec of Mesh "default": invalid duration "soon" (want for example "30s", "5m", "24h")`,
		},
		{
			name:    "not an object",
			in:      `[]`,
			wantErr: `v1alpha1: decode object: json: cannot unmarshal array into Go value of type struct`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Object
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("Unmarshal(%s) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.in, err)
			}
			if !reflect.DeepEqual(&got, tt.want) {
				t.Errorf("Unmarshal(%s) = %s, want %s", tt.in, mustJSON(t, &got), mustJSON(t, tt.want))
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
