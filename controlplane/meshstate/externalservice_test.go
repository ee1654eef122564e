package meshstate_test

import (
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/translate"
)

func externalService(namespace, name, addr string) *v1alpha1.Object {
	return &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion, Kind: "ExternalService",
		Metadata: v1alpha1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: &v1alpha1.ExternalServiceSpec{Hosts: []string{"api.partner.example"}, Ports: []v1alpha1.ExternalPort{{Port: 80}},
			Endpoints: []v1alpha1.ExternalEndpoint{{Address: addr}}},
	}
}

// TestWatcherReadsExternalServices: an ExternalService reaches the Input
// under its namespace and name, defaulted; a change replaces it and a
// delete removes it.
func TestWatcherReadsExternalServices(t *testing.T) {
	st := storetest.New(t)
	ctx := testContext(t)
	w := startWatcher(t, st, nil)
	key := translate.ServiceKey{Namespace: "shop", Name: "partner"}
	w.waitFor(t, "the initial load", func(*translate.Input) bool { return true })

	if _, err := st.Apply(ctx, []*v1alpha1.Object{externalService("shop", "partner", "127.0.8.1")}); err != nil {
		t.Fatal(err)
	}
	in := w.waitFor(t, "the ExternalService", func(in *translate.Input) bool { return in.ExternalServices[key] != nil })
	if es := in.ExternalServices[key]; es.Resolution != v1alpha1.ResolutionStatic || es.Ports[0].Protocol != v1alpha1.ExternalHTTP {
		t.Errorf("ExternalService = %+v, want it defaulted", es)
	}
	if _, err := st.Apply(ctx, []*v1alpha1.Object{externalService("shop", "partner", "127.0.8.2")}); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "the change", func(in *translate.Input) bool {
		es := in.ExternalServices[key]
		return es != nil && es.Endpoints[0].Address == "127.0.8.2"
	})
	if err := st.Delete(ctx, "ExternalService", "shop", "partner"); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "the delete", func(in *translate.Input) bool { _, has := in.ExternalServices[key]; return !has })
}
