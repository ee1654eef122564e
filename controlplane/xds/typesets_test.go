package xds

import (
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// webReplica is a second web proxy, bound like webNode but for its inbound address.
func webReplica(inbound string) xdsmeta.Node {
	n := webNode()
	n.ID, n.Inbound = xdsmeta.WorkloadID("web", "default", inbound), inbound
	return n
}

// heldSet returns the set of typeURL that the node's snapshot holds.
func (h *harness) heldSet(id, typeURL string) *typeSet {
	h.t.Helper()
	h.srv.mu.Lock()
	n := h.srv.nodes[id]
	h.srv.mu.Unlock()
	if n == nil {
		h.t.Fatalf("no node %q", id)
	}
	n.push.Lock()
	defer n.push.Unlock()
	return n.held[typeURL]
}

// TestTypeSetsShared checks that replicas of a service share the snapshot
// sets of the types whose resources are the same, keep their own of those
// that differ, and that the sets go with the last snapshot holding them.
func TestTypeSetsShared(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.srv.Update(meshInput(h.ca))
	web := h.svid("default", "web")
	a := h.open(&web, webNode())
	syncWeb(a)
	second := webReplica("127.0.1.5:15006")
	b := h.open(&web, second)
	syncWeb(b)

	for _, typeURL := range []string{resource.ClusterType, resource.EndpointType, resource.SecretType} {
		if h.heldSet(webNode().ID, typeURL) != h.heldSet(second.ID, typeURL) {
			t.Errorf("%s: the replicas hold two sets of the same resources", typeURL)
		}
	}
	// Their inbound listeners bind different addresses.
	la, lb := h.heldSet(webNode().ID, resource.ListenerType), h.heldSet(second.ID, resource.ListenerType)
	if la == lb {
		t.Fatal("the replicas share a listener set, but their listeners differ")
	}
	if la.res.Items[xdsmeta.InboundListener] == lb.res.Items[xdsmeta.InboundListener] {
		t.Error("the replicas share an inbound listener, but they bind different addresses")
	}

	shared := h.heldSet(webNode().ID, resource.ClusterType)
	b.close()
	eventually(t, "the second replica's sets released", func() bool {
		h.srv.typeSets.mu.Lock()
		defer h.srv.typeSets.mu.Unlock()
		return shared.refs == 1
	})
	a.close()
	eventually(t, "every set released", func() bool {
		h.srv.typeSets.mu.Lock()
		defer h.srv.typeSets.mu.Unlock()
		return len(h.srv.typeSets.sets) == 0
	})
}
