package translate

import (
	"os"
	"path/filepath"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/api/decode"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// authzInput is catalog (http, PERMISSIVE) and db (tcp, STRICT) with the
// AccessPolicies of testdata/authz.yaml.
func authzInput(t *testing.T) *Input {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "authz.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode.Documents(data, "authz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := input([]service{
		{ns: "shop", name: "catalog", protocol: v1alpha1.ProtocolHTTP, port: 8080, workloads: []*meshv1.Workload{
			workload("shop", "catalog", "v1", "127.0.6.1:15006", true),
		}},
		{ns: "shop", name: "db", protocol: v1alpha1.ProtocolTCP, port: 5432, workloads: []*meshv1.Workload{
			workload("shop", "db", "v1", "127.0.6.2:15006", true),
		}},
	}, false)
	in.Services[ServiceKey{"shop", "catalog"}].MTLS = &v1alpha1.MTLS{Mode: v1alpha1.MTLSPermissive}
	in.AccessPolicies = map[ServiceKey][]AccessPolicy{}
	for i, o := range objs {
		spec := o.Spec.(*v1alpha1.AccessPolicySpec)
		key := ServiceKey{Namespace: o.Metadata.Namespace, Name: spec.Service}
		in.AccessPolicies[key] = append(in.AccessPolicies[key], AccessPolicy{Name: o.Metadata.Name, Revision: int64(i + 1), Spec: spec})
	}
	return in
}

// TestAuthzGolden: catalog's policies become a DENY then an ALLOW RBAC
// filter before the router, on both filter chains of its PERMISSIVE
// listener; db's become network RBAC before its TCP proxy, on its one
// mTLS chain.
func TestAuthzGolden(t *testing.T) {
	in := authzInput(t)
	for _, tc := range []struct {
		name string
		node xdsmeta.Node
	}{
		{"authz-http", node("shop", "catalog", "127.0.6.1:15006")},
		{"authz-tcp", node("shop", "db", "127.0.6.2:15006")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ForNode(in, tc.node)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, r, tc.name+".golden")
		})
	}
}

// TestMTLSModes: the Mesh's mode applies unless a Service overrides it;
// STRICT has one mTLS chain and no inspector, PERMISSIVE an inspector and
// a tls and a raw_buffer chain.
func TestMTLSModes(t *testing.T) {
	catalog := ServiceKey{"shop", "catalog"}
	for _, tc := range []struct {
		name       string
		mesh       v1alpha1.MTLSMode
		override   v1alpha1.MTLSMode
		permissive bool
	}{
		{"strict mesh", v1alpha1.MTLSStrict, "", false},
		{"permissive mesh", v1alpha1.MTLSPermissive, "", true},
		{"strict override of a permissive mesh", v1alpha1.MTLSPermissive, v1alpha1.MTLSStrict, false},
		{"permissive override of a strict mesh", v1alpha1.MTLSStrict, v1alpha1.MTLSPermissive, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := authzInput(t)
			in.Mesh.MTLS.Mode = tc.mesh
			in.Services[catalog].MTLS = nil
			if tc.override != "" {
				in.Services[catalog].MTLS = &v1alpha1.MTLS{Mode: tc.override}
			}
			r, err := ForNode(in, node("shop", "catalog", "127.0.6.1:15006"))
			if err != nil {
				t.Fatal(err)
			}
			l := r.Listeners[0].(*listenerv3.Listener)
			chains := l.GetFilterChains()
			if !tc.permissive {
				if len(chains) != 1 || chains[0].GetTransportSocket() == nil || len(l.GetListenerFilters()) != 0 {
					t.Fatalf("STRICT listener: %d chains, %d listener filters", len(chains), len(l.GetListenerFilters()))
				}
				return
			}
			if len(l.GetListenerFilters()) != 1 || l.GetListenerFilters()[0].GetName() != listenerTLSInspector || !l.GetContinueOnListenerFiltersTimeout() {
				t.Fatalf("PERMISSIVE listener filters: %v", l.GetListenerFilters())
			}
			if len(chains) != 2 ||
				chains[0].GetFilterChainMatch().GetTransportProtocol() != "tls" || chains[0].GetTransportSocket() == nil ||
				chains[1].GetFilterChainMatch().GetTransportProtocol() != "raw_buffer" || chains[1].GetTransportSocket() != nil {
				t.Fatalf("PERMISSIVE chains: %v", chains)
			}
		})
	}
}

// TestAuthzReachesOnlyItsService: an AccessPolicy changes the listeners of
// its destination's proxies and nothing of a caller's.
func TestAuthzReachesOnlyItsService(t *testing.T) {
	with, without := authzInput(t), authzInput(t)
	without.AccessPolicies = nil
	for _, tc := range []struct {
		node    xdsmeta.Node
		changed bool
	}{
		{node("shop", "catalog", "127.0.6.1:15006"), true},
		{node("shop", "web", "127.0.6.9:15006", "catalog=127.0.0.1:9001", "db=127.0.0.1:9002"), false},
	} {
		a, err := ForNode(with, tc.node)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ForNode(without, tc.node)
		if err != nil {
			t.Fatal(err)
		}
		for typeURL := range a.ByType() {
			changed := a.Version(typeURL) != b.Version(typeURL)
			if want := tc.changed && typeURL == resource.ListenerType; changed != want {
				t.Errorf("%s: %s changed = %v, want %v", tc.node.Service, typeURL, changed, want)
			}
		}
	}
}
