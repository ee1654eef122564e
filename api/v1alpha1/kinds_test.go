package v1alpha1

import (
	"fmt"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		name     string
		wantKind string // "" when the lookup must fail
	}{
		{name: "Mesh", wantKind: "Mesh"},
		{name: "mesh", wantKind: "Mesh"},
		{name: "MESHES", wantKind: "Mesh"},
		{name: "Service", wantKind: "Service"},
		{name: "services", wantKind: "Service"},
		{name: "svc", wantKind: "Service"},
		{name: "SVC", wantKind: "Service"},
		{name: "", wantKind: ""},
		{name: "Widget", wantKind: ""},
		{name: "servic", wantKind: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, ok := Lookup(tt.name)
			if ok != (tt.wantKind != "") || k.Name != tt.wantKind {
				t.Errorf("Lookup(%q) = %q, %v; want %q", tt.name, k.Name, ok, tt.wantKind)
			}
		})
	}
}

func TestRegisteredKinds(t *testing.T) {
	var got []string
	for _, k := range Kinds() {
		got = append(got, fmt.Sprintf("%s/%s/%v/%v/%q", k.Name, k.Plural, k.Aliases, k.Namespaced, k.FixedName))
	}
	want := []string{
		`AccessPolicy/accesspolicies/[ap]/true/""`,
		`DestinationPolicy/destinationpolicies/[dp]/true/""`,
		`ExternalService/externalservices/[extsvc se]/true/""`,
		`Gateway/gateways/[gw]/true/""`,
		`Mesh/meshes/[]/false/"default"`,
		`RateLimit/ratelimits/[rl]/true/""`,
		`RequestAuth/requestauths/[ra]/true/""`,
		`Route/routes/[]/true/""`,
		`Service/services/[svc]/true/""`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Kinds() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestKindsReturnsCopies(t *testing.T) {
	Kinds()[3].Aliases[0] = "changed"
	if k, _ := Lookup("svc"); k.Aliases[0] != "svc" {
		t.Errorf("changing a Kind returned by Kinds changed the registry: aliases are now %v", k.Aliases)
	}
}

func TestRegisterPanics(t *testing.T) {
	newSpec := func() Spec { return new(ServiceSpec) }
	tests := []struct {
		name      string
		kind      Kind
		wantPanic string
	}{
		{
			name:      "no name",
			kind:      Kind{NewSpec: newSpec},
			wantPanic: `v1alpha1: Register(""): a kind needs a Name and a NewSpec`,
		},
		{
			name:      "no spec",
			kind:      Kind{Name: "Widget"},
			wantPanic: `v1alpha1: Register("Widget"): a kind needs a Name and a NewSpec`,
		},
		{
			name:      "duplicate name",
			kind:      Kind{Name: "Service", NewSpec: newSpec},
			wantPanic: `v1alpha1: Register("Service"): name "Service" is already used by kind Service`,
		},
		{
			name:      "alias taken in another case",
			kind:      Kind{Name: "ServiceVersion", Aliases: []string{"SVC"}, NewSpec: newSpec},
			wantPanic: `v1alpha1: Register("ServiceVersion"): name "SVC" is already used by kind Service`,
		},
		{
			name:      "plural taken",
			kind:      Kind{Name: "Meshes2", Plural: "meshes", NewSpec: newSpec},
			wantPanic: `v1alpha1: Register("Meshes2"): name "meshes" is already used by kind Mesh`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if got := fmt.Sprint(recover()); got != tt.wantPanic {
					t.Errorf("Register panicked with %q, want %q", got, tt.wantPanic)
				}
				if _, ok := Lookup(tt.kind.Name); ok && tt.kind.Name != "Service" {
					t.Errorf("a failed Register left kind %q registered", tt.kind.Name)
				}
			}()
			Register(tt.kind)
		})
	}
}
