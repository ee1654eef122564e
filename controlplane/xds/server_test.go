package xds

import (
	"context"
	"crypto/tls"
	"io"
	"strings"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	rpcstatus "google.golang.org/grpc/status"
)

// TestADS walks one proxy through its life: the first responses, ACKs, an
// endpoint change pushed as EDS alone, an identical update pushed as
// nothing, a NACK, and the cleanup when the proxy goes away.
func TestADS(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.srv.Update(meshInput(h.ca))
	web := h.svid("default", "web")
	a := h.open(&web, webNode())

	// Envoy asks for listeners and clusters first, then for what they name.
	a.send(resource.ListenerType, "", "")
	a.send(resource.ClusterType, "", "")
	first := a.recvTypes(2)
	lds, cds := first[resource.ListenerType], first[resource.ClusterType]
	if diff := cmp.Diff([]string{"inbound", "outbound|payments.default=127.0.0.1:9001"}, names(t, lds)); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"inbound|web.default", "outbound|payments.default"}, names(t, cds)); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	a.ack(lds)
	a.ack(cds)
	a.send(resource.EndpointType, "", "", "outbound|payments.default")
	a.send(resource.RouteType, "", "", "outbound|payments.default")
	a.send(resource.SecretType, "", "", xdsmeta.SecretDefault, xdsmeta.SecretRootCA)
	second := a.recvTypes(3)
	eds := second[resource.EndpointType]
	if got := endpoints(t, eds); got != 1 {
		t.Errorf("EDS has %d endpoints, want 1", got)
	}
	if diff := cmp.Diff([]string{xdsmeta.SecretRootCA}, names(t, second[resource.SecretType])); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
	for _, r := range second {
		a.ack(r)
	}
	eventually(t, "ACKs of all five types", func() bool {
		nodes := h.srv.Nodes()
		return len(nodes) == 1 && len(nodes[0].Acked) == 5
	})
	st := h.srv.Nodes()[0]
	if st.ID != webNode().ID || st.Streams != 1 || st.ConnectedSince.IsZero() {
		t.Errorf("node status = %+v", st)
	}
	if diff := cmp.Diff(st.Versions, st.Acked); diff != "" {
		t.Errorf("acked versions differ from the pushed ones (-pushed +acked):\n%s", diff)
	}

	// A new ready workload changes the endpoints and nothing else.
	newWorkload := ws("default", "payments", "v2", "127.0.1.3:15006", true)
	h.srv.Update(meshInput(h.ca, newWorkload))
	eds2 := a.recv()
	if eds2.GetTypeUrl() != resource.EndpointType || eds2.GetVersionInfo() == eds.GetVersionInfo() {
		t.Fatalf("got %s version %s, want a new EDS version", eds2.GetTypeUrl(), eds2.GetVersionInfo())
	}
	if got := endpoints(t, eds2); got != 2 {
		t.Errorf("EDS has %d endpoints, want 2", got)
	}
	a.ack(eds2)
	a.expectNothing(quiet)

	// The same mesh again, in fresh objects: nothing to push.
	h.srv.Update(meshInput(h.ca, ws("default", "payments", "v2", "127.0.1.3:15006", true)))
	a.expectNothing(quiet)

	// The proxy rejects the next endpoints.
	h.srv.Update(meshInput(h.ca, newWorkload, ws("default", "payments", "v3", "127.0.1.4:15006", true)))
	eds3 := a.recv()
	if err := a.s.Send(&discoverypb.DiscoveryRequest{
		TypeUrl: resource.EndpointType, VersionInfo: eds2.GetVersionInfo(), ResponseNonce: eds3.GetNonce(),
		ResourceNames: []string{"outbound|payments.default"},
		ErrorDetail:   &status.Status{Code: int32(codes.InvalidArgument), Message: "endpoints[0]: not for this proxy"},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the NACK counted", func() bool { return h.metric("weft_xds_nacks_total", "type", "eds") == 1 })
	nack := h.srv.Nodes()[0].LastNACK
	if nack == nil || nack.TypeURL != resource.EndpointType || nack.Version != eds3.GetVersionInfo() ||
		!strings.Contains(nack.Message, "not for this proxy") {
		t.Errorf("LastNACK = %+v, want the EDS version %s", nack, eds3.GetVersionInfo())
	}
	if !strings.Contains(h.logs.String(), "proxy rejected configuration") {
		t.Error("the NACK was not logged")
	}
	// The rejected configuration is not sent back; the next change is.
	a.expectNothing(quiet)
	h.srv.Update(meshInput(h.ca, newWorkload))
	if r := a.recv(); r.GetTypeUrl() != resource.EndpointType || r.GetVersionInfo() != eds2.GetVersionInfo() {
		t.Errorf("got %s version %s, want EDS back at the accepted version %s", r.GetTypeUrl(), r.GetVersionInfo(), eds2.GetVersionInfo())
	}

	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"weft_xds_connected_proxies", nil, 1},
		{"weft_xds_pushes_total", []string{"type", "lds"}, 1},
		{"weft_xds_pushes_total", []string{"type", "cds"}, 1},
		{"weft_xds_pushes_total", []string{"type", "eds"}, 4},
	} {
		if got := h.metric(m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	if h.metric("weft_xds_push_duration_seconds") == 0 {
		t.Error("no push duration observed")
	}

	// The proxy goes away: its node and snapshot go with it.
	h.srv.mu.Lock()
	n := h.srv.nodes[webNode().ID]
	h.srv.mu.Unlock()
	a.close()
	eventually(t, "the node forgotten", func() bool { return len(h.srv.Nodes()) == 0 })
	if n.snap.Load() != nil {
		t.Error("snapshot still held after the last stream closed")
	}
	if got := h.metric("weft_xds_connected_proxies"); got != 0 {
		t.Errorf("connected proxies = %v, want 0", got)
	}
}

// TestNodeOnFirstRequestOnly: a stream whose later requests carry no node
// is served as one that repeats it.
func TestNodeOnFirstRequestOnly(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.srv.Update(meshInput(h.ca))
	web := h.svid("default", "web")
	a := h.open(&web, webNode())
	a.send(resource.ClusterType, "", "")
	cds := a.recv()
	a.sendBare(resource.ClusterType, cds.GetVersionInfo(), cds.GetNonce())
	a.sendBare(resource.EndpointType, "", "", "outbound|payments.default")
	eds := a.recv()
	if eds.GetTypeUrl() != resource.EndpointType || endpoints(t, eds) != 1 {
		t.Fatalf("got %s with %d endpoints, want EDS with 1", eds.GetTypeUrl(), endpoints(t, eds))
	}
	a.sendBare(resource.EndpointType, eds.GetVersionInfo(), eds.GetNonce(), "outbound|payments.default")
	eventually(t, "ACKs of both types", func() bool {
		nodes := h.srv.Nodes()
		return len(nodes) == 1 && len(nodes[0].Acked) == 2
	})
	h.srv.Update(meshInput(h.ca, ws("default", "payments", "v2", "127.0.1.3:15006", true)))
	if r := a.recv(); r.GetTypeUrl() != resource.EndpointType || endpoints(t, r) != 2 {
		t.Errorf("got %s, want EDS with the new endpoint", r.GetTypeUrl())
	}

}

// TestFirstResponseNotDebounced checks that a new proxy gets its
// configuration at once, not after the debounce.
func TestFirstResponseNotDebounced(t *testing.T) {
	h := newHarness(t, harnessOptions{debounce: time.Hour})
	h.srv.Update(meshInput(h.ca))
	web := h.svid("default", "web")
	a := h.open(&web, webNode())
	a.send(resource.ClusterType, "", "")
	if r := a.recv(); len(r.GetResources()) != 2 {
		t.Errorf("got %d clusters, want 2", len(r.GetResources()))
	}
}

// TestReconnect checks that a node outlives all but its last stream.
func TestReconnect(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.srv.Update(meshInput(h.ca))
	web := h.svid("default", "web")
	old := h.open(&web, webNode())
	old.send(resource.ClusterType, "", "")
	old.recv()

	fresh := h.open(&web, webNode())
	fresh.send(resource.ClusterType, "", "")
	a := fresh.recv()
	fresh.ack(a)
	old.close()
	eventually(t, "one stream left", func() bool {
		nodes := h.srv.Nodes()
		return len(nodes) == 1 && nodes[0].Streams == 1
	})
	fresh.send(resource.EndpointType, "", "", "outbound|payments.default")
	fresh.ack(fresh.recv())
	h.srv.Update(meshInput(h.ca, ws("default", "payments", "v2", "127.0.1.3:15006", true)))
	if r := fresh.recv(); r.GetTypeUrl() != resource.EndpointType {
		t.Errorf("got %s, want the new endpoints on the remaining stream", r.GetTypeUrl())
	}
}

func TestRefusedStreams(t *testing.T) {
	otherID := webNode()
	otherID.ID = xdsmeta.WorkloadID("payments", "default", "127.0.1.1:15006")
	claimsPayments := webNode()
	claimsPayments.Service = "payments"
	claimsPayments.ID = xdsmeta.WorkloadID("payments", "default", "127.0.1.1:15006")

	for _, tc := range []struct {
		name  string
		node  func() *discoverypb.DiscoveryRequest
		cert  string // the client certificate's service; none if empty
		ns    string // the certificate's namespace; "default" if empty
		code  codes.Code
		wants []string
	}{{
		name: "another service", cert: "web", code: codes.PermissionDenied,
		node:  request(claimsPayments),
		wants: []string{"payments.default", "web.default"},
	}, {
		name: "another service's node id", cert: "web", code: codes.PermissionDenied,
		node:  request(otherID),
		wants: []string{`"payments.default@127.0.1.1:15006"`, "web.default"},
	}, {
		// The same service name in another namespace is another identity.
		name: "another namespace", cert: "web", ns: "shop", code: codes.PermissionDenied,
		node:  request(webNode()),
		wants: []string{"web.default", "spiffe://weft.local/ns/shop/sa/web", "web.shop"},
	}, {
		name: "no metadata", cert: "web", code: codes.InvalidArgument,
		node: func() *discoverypb.DiscoveryRequest {
			return &discoverypb.DiscoveryRequest{TypeUrl: resource.ListenerType}
		},
		wants: []string{"node"},
	}, {
		name: "no certificate", code: codes.Unauthenticated,
		node:  request(webNode()),
		wants: []string{"no verified client certificate"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			// Let the TLS handshake through without a certificate, so that
			// the server itself has to refuse the stream.
			h := newHarness(t, harnessOptions{clientAuth: tls.VerifyClientCertIfGiven})
			h.srv.Update(meshInput(h.ca))
			var cert *tls.Certificate
			if tc.cert != "" {
				ns := tc.ns
				if ns == "" {
					ns = "default"
				}
				c := h.svid(ns, tc.cert)
				cert = &c
			}
			a := h.open(cert, webNode())
			// A stream refused on open may already be closed: Send says
			// io.EOF, and the status is in Recv.
			if err := a.s.Send(tc.node()); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			st := a.err()
			if st.Code() != tc.code {
				t.Errorf("code = %v (%s), want %v", st.Code(), st.Message(), tc.code)
			}
			for _, w := range tc.wants {
				if !strings.Contains(st.Message(), w) {
					t.Errorf("message %q does not name %s", st.Message(), w)
				}
			}
			if n := h.srv.Nodes(); len(n) != 0 {
				t.Errorf("refused node is listed: %+v", n)
			}
			if got := h.metric("weft_xds_connected_proxies"); got != 0 {
				t.Errorf("connected proxies = %v, want 0", got)
			}
		})
	}
}

func TestDeltaRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	web := h.svid("default", "web")
	conn := h.dial(&web)
	defer conn.Close()
	d, err := discoverypb.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The server may refuse the stream before the request is out: Send
	// then says io.EOF, and Recv has the status.
	if err := d.Send(&discoverypb.DeltaDiscoveryRequest{Node: webNode().ToProto(), TypeUrl: resource.ClusterType}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if _, err := d.Recv(); rpcstatus.Code(err) != codes.Unimplemented {
		t.Errorf("delta stream: %v, want Unimplemented", err)
	}
}

func TestRunTwice(t *testing.T) {
	s := New(Options{})
	done, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Run(done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := s.Run(t.Context()); err == nil {
		t.Error("second Run succeeded")
	}
}

func request(n xdsmeta.Node) func() *discoverypb.DiscoveryRequest {
	return func() *discoverypb.DiscoveryRequest {
		return &discoverypb.DiscoveryRequest{Node: n.ToProto(), TypeUrl: resource.ListenerType}
	}
}

// endpoints counts the endpoints of the one load assignment in r.
func endpoints(t *testing.T, r *discoverypb.DiscoveryResponse) int {
	t.Helper()
	if len(r.GetResources()) != 1 {
		t.Fatalf("%d load assignments, want 1", len(r.GetResources()))
	}
	var cla endpointv3.ClusterLoadAssignment
	if err := r.GetResources()[0].UnmarshalTo(&cla); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range cla.GetEndpoints() {
		n += len(l.GetLbEndpoints())
	}
	return n
}

// TestSubscriptions checks how requests are answered: a stream that
// presents the version the server has is not sent it again, a request
// naming more than the last is answered at the same version and one naming
// less is not, and a request answering a replaced response is ignored.
func TestSubscriptions(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.srv.Update(meshInput(h.ca))
	web := h.svid("default", "web")
	a := h.open(&web, webNode())
	syncWeb(a)
	a.send(resource.SecretType, "", "", xdsmeta.SecretRootCA)
	sds := a.recv()
	a.ack(sds)

	// More names: the same version again, for what they add.
	a.send(resource.SecretType, sds.GetVersionInfo(), sds.GetNonce(), xdsmeta.SecretRootCA, xdsmeta.SecretDefault)
	more := a.recv()
	if more.GetTypeUrl() != resource.SecretType || more.GetVersionInfo() != sds.GetVersionInfo() {
		t.Fatalf("got %s version %s, want SDS again at %s", more.GetTypeUrl(), more.GetVersionInfo(), sds.GetVersionInfo())
	}
	// Fewer names, and a request answering the replaced response: nothing.
	a.send(resource.SecretType, more.GetVersionInfo(), more.GetNonce(), xdsmeta.SecretRootCA)
	a.send(resource.SecretType, sds.GetVersionInfo(), sds.GetNonce(), xdsmeta.SecretRootCA, "another")
	a.expectNothing(quiet)

	// A second stream of the proxy (as to another replica) that holds the
	// current endpoints is not sent them; it is sent the next change.
	var eds string
	for _, n := range h.srv.Nodes() {
		eds = n.Versions[resource.EndpointType]
	}
	b := h.open(&web, webNode())
	b.send(resource.EndpointType, eds, "", "outbound|payments.default")
	b.expectNothing(quiet)
	h.srv.Update(meshInput(h.ca, ws("default", "payments", "v2", "127.0.1.3:15006", true)))
	if r := b.recv(); r.GetTypeUrl() != resource.EndpointType || endpoints(t, r) != 2 {
		t.Errorf("got %s, want EDS with the new endpoint", r.GetTypeUrl())
	}
}
