package meshstate_test

import (
	"testing"
	"time"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/translate"
)

func requestAuth(namespace, service, uri string) *v1alpha1.Object {
	return &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.RequestAuthKind.Name,
		Metadata: v1alpha1.ObjectMeta{Namespace: namespace, Name: service},
		Spec:     &v1alpha1.RequestAuthSpec{Issuers: []v1alpha1.JWTIssuer{{Issuer: "https://idp.test", JWKSURI: uri}}},
	}
}

// TestWatcherReadsRequestAuths: a RequestAuth reaches the Input under the
// service it is named after, defaulted; a change replaces it and a delete
// removes it.
func TestWatcherReadsRequestAuths(t *testing.T) {
	st := storetest.New(t)
	ctx := testContext(t)
	w := startWatcher(t, st, nil)
	catalog := translate.ServiceKey{Namespace: "shop", Name: "catalog"}
	w.waitFor(t, "the initial load", func(*translate.Input) bool { return true })

	if _, err := st.Apply(ctx, []*v1alpha1.Object{requestAuth("shop", "catalog", "https://idp.test/a")}); err != nil {
		t.Fatal(err)
	}
	in := w.waitFor(t, "catalog's RequestAuth", func(in *translate.Input) bool { return in.RequestAuths[catalog] != nil })
	if is := in.RequestAuths[catalog].Issuers[0]; is.JWKSCacheDuration == nil || is.JWKSCacheDuration.Duration != 10*time.Minute {
		t.Errorf("issuer = %+v, want the default cache duration", is)
	}

	if _, err := st.Apply(ctx, []*v1alpha1.Object{requestAuth("shop", "catalog", "https://idp.test/b")}); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "the change", func(in *translate.Input) bool {
		ra := in.RequestAuths[catalog]
		return ra != nil && ra.Issuers[0].JWKSURI == "https://idp.test/b"
	})
	if err := st.Delete(ctx, v1alpha1.RequestAuthKind.Name, "shop", "catalog"); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "the delete", func(in *translate.Input) bool { _, has := in.RequestAuths[catalog]; return !has })
}
