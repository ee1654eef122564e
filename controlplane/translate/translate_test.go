package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/encoding/protojson"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// bundle stands in for a trust bundle: translation copies it, never parses it.
const bundle = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

// service is one Service resource and its workloads, for building inputs.
type service struct {
	ns, name  string
	protocol  v1alpha1.Protocol // "" for a service without a Service resource
	port      int32
	workloads []*meshv1.Workload
	// route and policy, if set, are the service's Route and DestinationPolicy.
	route  *v1alpha1.RouteSpec
	policy *v1alpha1.DestinationPolicySpec
}

func workload(ns, svc, version, addr string, ready bool) *meshv1.Workload {
	return &meshv1.Workload{
		Id: xdsmeta.WorkloadID(svc, ns, addr), Service: svc, Namespace: ns, Version: version,
		Address: addr, AppAddress: "127.0.0.1:8080", Ready: ready,
		Labels: map[string]string{"version": version, "team": "core"},
	}
}

// input builds an Input, inserting map entries in the given order and,
// when reversed is set, in the opposite order with workloads reversed too.
func input(svcs []service, reversed bool) *Input {
	in := &Input{
		TrustDomain:    "weft.local",
		TrustBundlePEM: []byte(bundle),
		Services:       map[ServiceKey]*v1alpha1.ServiceSpec{},
		Workloads:      map[ServiceKey][]*meshv1.Workload{},
	}
	order := slices.Clone(svcs)
	if reversed {
		slices.Reverse(order)
	}
	for _, s := range order {
		key := ServiceKey{Namespace: s.ns, Name: s.name}
		if s.protocol != "" {
			in.Services[key] = &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Name: "main", Port: s.port, Protocol: s.protocol}}}
		}
		if s.route != nil {
			if in.Routes == nil {
				in.Routes = map[ServiceKey]*v1alpha1.RouteSpec{}
			}
			in.Routes[key] = s.route
		}
		if s.policy != nil {
			if in.Policies == nil {
				in.Policies = map[ServiceKey]*v1alpha1.DestinationPolicySpec{}
			}
			in.Policies[key] = s.policy
		}
		if len(s.workloads) > 0 {
			ws := slices.Clone(s.workloads)
			if reversed {
				slices.Reverse(ws)
			}
			in.Workloads[key] = ws
		}
	}
	return in
}

func node(ns, svc, inbound string, upstreams ...string) xdsmeta.Node {
	n := xdsmeta.Node{
		ID: xdsmeta.WorkloadID(svc, ns, inbound), Service: svc, Namespace: ns, Version: "v1",
		Inbound: inbound, App: "127.0.0.1:8080", Admin: "127.0.0.1:15000",
	}
	for _, s := range upstreams {
		u, err := xdsmeta.ParseUpstream(s, ns)
		if err != nil {
			panic(err)
		}
		n.Upstreams = append(n.Upstreams, u)
	}
	return n
}

type testCase struct {
	name string
	svcs []service
	node xdsmeta.Node
}

func cases() []testCase {
	withProxy := node("default", "web", "127.0.1.1:15006",
		"payments=127.0.0.1:9001", "ledger.finance=127.0.0.1:9002", "search=127.0.0.1:9003")
	withProxy.HTTPProxy = "127.0.0.1:15080"
	return []testCase{{
		// An HTTP service with two versions, one workload not ready yet; an
		// upstream in another namespace; one not known to the mesh yet.
		name: "http",
		svcs: []service{
			{ns: "default", name: "web", protocol: v1alpha1.ProtocolHTTP, port: 80, workloads: []*meshv1.Workload{
				workload("default", "web", "v1", "127.0.1.1:15006", true),
			}},
			{ns: "default", name: "payments", protocol: v1alpha1.ProtocolHTTP, port: 8080, workloads: []*meshv1.Workload{
				workload("default", "payments", "v1", "127.0.1.2:15006", true),
				workload("default", "payments", "v2", "127.0.1.3:15006", true),
				workload("default", "payments", "v2", "127.0.1.4:15006", false),
			}},
			{ns: "finance", name: "ledger", workloads: []*meshv1.Workload{
				workload("finance", "ledger", "v1", "127.0.1.5:15006", true),
			}},
			{ns: "default", name: "postgres", protocol: v1alpha1.ProtocolTCP, port: 5432},
		},
		node: withProxy,
	}, {
		name: "tcp",
		svcs: []service{
			{ns: "data", name: "postgres", protocol: v1alpha1.ProtocolTCP, port: 5432, workloads: []*meshv1.Workload{
				workload("data", "postgres", "15", "127.0.2.1:15006", true),
			}},
			{ns: "data", name: "redis", protocol: v1alpha1.ProtocolTCP, port: 6379, workloads: []*meshv1.Workload{
				workload("data", "redis", "7", "127.0.2.2:15006", true),
			}},
		},
		node: node("data", "postgres", "127.0.2.1:15006", "redis=127.0.0.1:6379"),
	}, {
		name: "grpc",
		svcs: []service{
			{ns: "shop", name: "greeter", protocol: v1alpha1.ProtocolGRPC, port: 50051, workloads: []*meshv1.Workload{
				workload("shop", "greeter", "v1", "127.0.3.1:15006", true),
			}},
			{ns: "shop", name: "inventory", protocol: v1alpha1.ProtocolGRPC, port: 50051, workloads: []*meshv1.Workload{
				workload("shop", "inventory", "v1", "[::1]:15006", true),
			}},
		},
		node: node("shop", "greeter", "127.0.3.1:15006", "inventory=127.0.0.1:50051"),
	}, {
		// A Route and a DestinationPolicy with every feature, a tcp Route,
		// and the services they name, reached by upstreams and the HTTP proxy.
		name: "traffic",
		svcs: trafficServices(),
		node: func() xdsmeta.Node {
			n := node("shop", "web", "127.0.4.1:15006", "catalog=127.0.0.1:9001", "db=127.0.0.1:9002")
			n.HTTPProxy = "127.0.0.1:15080"
			return n
		}(),
	}, {
		// A proxy that starts before anything else: every cluster is empty.
		name: "no-workloads",
		node: func() xdsmeta.Node {
			n := node("default", "web", "127.0.1.1:15006", "payments=127.0.0.1:9001")
			n.HTTPProxy = "127.0.0.1:15080"
			return n
		}(),
	}}
}

func TestGolden(t *testing.T) {
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ForNode(input(tc.svcs, false), tc.node)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, r, tc.name+".golden")
		})
	}
}

func TestDeterministic(t *testing.T) {
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ForNode(input(tc.svcs, false), tc.node)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ForNode(input(tc.svcs, false), tc.node)
			if err != nil {
				t.Fatal(err)
			}
			shuffled, err := ForNode(input(tc.svcs, true), tc.node)
			if err != nil {
				t.Fatal(err)
			}
			for _, other := range []*Resources{again, shuffled} {
				if !bytes.Equal(render(t, a), render(t, other)) {
					t.Fatal("same input rendered differently")
				}
				for typeURL := range a.ByType() {
					if a.Version(typeURL) == "" || a.Version(typeURL) != other.Version(typeURL) {
						t.Errorf("%s: version %q, then %q", typeURL, a.Version(typeURL), other.Version(typeURL))
					}
				}
			}
		})
	}
}

// TestVersionTracksContent checks that a new ready workload changes the
// endpoints' version and nothing else.
func TestVersionTracksContent(t *testing.T) {
	tc := cases()[0]
	before, err := ForNode(input(tc.svcs, false), tc.node)
	if err != nil {
		t.Fatal(err)
	}
	tc.svcs[1].workloads = append(tc.svcs[1].workloads, workload("default", "payments", "v3", "127.0.1.9:15006", true))
	after, err := ForNode(input(tc.svcs, false), tc.node)
	if err != nil {
		t.Fatal(err)
	}
	for typeURL := range before.ByType() {
		changed := before.Version(typeURL) != after.Version(typeURL)
		if want := typeURL == resource.EndpointType; changed != want {
			t.Errorf("%s: version changed = %v, want %v", typeURL, changed, want)
		}
	}
}

func TestForNodeErrors(t *testing.T) {
	good := node("default", "web", "127.0.1.1:15006", "payments=127.0.0.1:9001")
	for _, tc := range []struct {
		name string
		in   func(*Input)
		node func(*xdsmeta.Node)
		want string
	}{
		{name: "no trust domain", in: func(in *Input) { in.TrustDomain = "" }, want: "trust domain is empty"},
		{name: "no bundle", in: func(in *Input) { in.TrustBundlePEM = nil }, want: "trust bundle is empty"},
		{name: "host name inbound", node: func(n *xdsmeta.Node) { n.Inbound = "localhost:15006" }, want: "inbound address"},
		{name: "no app", node: func(n *xdsmeta.Node) { n.App = "" }, want: "app address is empty"},
		{name: "bad upstream", node: func(n *xdsmeta.Node) { n.Upstreams[0].Listen = "9001" }, want: "upstream payments.default=9001"},
		{name: "upstream on the inbound address", node: func(n *xdsmeta.Node) { n.Upstreams[0].Listen = n.Inbound }, want: "both listen on 127.0.1.1:15006"},
		{name: "bad http proxy", node: func(n *xdsmeta.Node) { n.HTTPProxy = "127.0.0.1" }, want: "http proxy address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, n := input(cases()[0].svcs, false), good
			n.Upstreams = slices.Clone(good.Upstreams)
			if tc.in != nil {
				tc.in(in)
			}
			if tc.node != nil {
				tc.node(&n)
			}
			_, err := ForNode(in, n)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "translate: ") {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// render is the golden text of resources: one resource after another, by
// type URL then name, each as protojson re-indented with sorted keys
// (protojson's own whitespace is deliberately unstable).
func render(t testing.TB, r *Resources) []byte {
	t.Helper()
	byType := r.ByType()
	var out bytes.Buffer
	for _, typeURL := range slices.Sorted(maps.Keys(byType)) {
		for _, res := range byType[typeURL] {
			fmt.Fprintf(&out, "# %s %s\n", strings.TrimPrefix(typeURL, resource.APITypePrefix), resourceName(res))
			out.Write(canonicalJSON(t, res))
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

func canonicalJSON(t testing.TB, m types.Resource) []byte {
	t.Helper()
	raw, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// checkGolden compares r, rendered, with testdata/file; -update rewrites it.
func checkGolden(t *testing.T, r *Resources, file string) {
	t.Helper()
	got := render(t, r)
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}
