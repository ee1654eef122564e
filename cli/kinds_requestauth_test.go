package cli

import (
	"bytes"
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
)

func TestRequestAuthColumns(t *testing.T) {
	o := &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.RequestAuthKind.Name,
		Metadata: v1alpha1.ObjectMeta{Namespace: "shop", Name: "catalog"},
		Spec: &v1alpha1.RequestAuthSpec{
			Issuers: []v1alpha1.JWTIssuer{{Issuer: "https://idp"}, {Issuer: "partner"}},
			Rules: []v1alpha1.RequestAuthRule{
				{Paths: []string{"/healthz"}},
				{Paths: []string{"/admin"}, RouteRules: []string{"checkout"}, Require: true},
			},
		},
	}
	var b bytes.Buffer
	if err := printObjects(&b, formatTable, v1alpha1.RequestAuthKind, []*v1alpha1.Object{o}); err != nil {
		t.Fatal(err)
	}
	want := "NAMESPACE   NAME      ISSUERS               REQUIRED-ON\n" +
		"shop        catalog   https://idp,partner   /admin,rule:checkout\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
