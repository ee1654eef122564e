package xds

import (
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/translate"
)

// TestDiffInputsExternalServices: adding, changing or removing an
// ExternalService reaches every proxy; the same map does not.
func TestDiffInputsExternalServices(t *testing.T) {
	key := translate.ServiceKey{Namespace: "default", Name: "partner"}
	spec := &v1alpha1.ExternalServiceSpec{Hosts: []string{"api.partner.example"}}
	base := &translate.Input{TrustDomain: "weft.local", TrustBundlePEM: []byte("x")}
	with := *base
	with.ExternalServices = map[translate.ServiceKey]*v1alpha1.ExternalServiceSpec{key: spec}
	changed := with
	changed.ExternalServices = map[translate.ServiceKey]*v1alpha1.ExternalServiceSpec{key: {Hosts: []string{"api.partner.example"}}}
	same := with
	same.ExternalServices = map[translate.ServiceKey]*v1alpha1.ExternalServiceSpec{key: spec}
	for _, tc := range []struct {
		name string
		a, b *translate.Input
		all  bool
	}{
		{"added", base, &with, true},
		{"removed", &with, base, true},
		{"changed", &with, &changed, true},
		{"same", &with, &same, false},
	} {
		if got := diffInputs(tc.a, tc.b).all; got != tc.all {
			t.Errorf("%s: all = %v, want %v", tc.name, got, tc.all)
		}
	}
}
