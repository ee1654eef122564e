package xds

import (
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
)

// A destination policy (AccessPolicy; RequestAuth and RateLimit can plug
// in) is enforced on its service's inbound listener, so it has reached a
// proxy of the service once the proxy ACKed a Listener version computed
// from an input that carries the policy's current revision.

// PolicyRevision returns the store revision of the policy kind
// namespace/name of service that in carries, if it carries it.
type PolicyRevision func(in *translate.Input, namespace, name, service string) (revision int64, ok bool)

// policyRevisions holds, per kind, how to find a policy in an input. A
// kind without one counts a proxy as applied once it ACKed its listeners.
var policyRevisions = map[string]PolicyRevision{
	v1alpha1.AccessPolicyKind.Name: func(in *translate.Input, namespace, name, service string) (int64, bool) {
		for _, p := range in.AccessPolicies[translate.ServiceKey{Namespace: namespace, Name: service}] {
			if p.Name == name {
				return p.Revision, true
			}
		}
		return 0, false
	},
}

// PolicyStatus says how far revision of the policy kind namespace/name has
// reached the connected proxies of service, which enforce it: want counts
// them, applied those that ACKed a listener carrying that revision or a
// later one, and nacks holds the message of each that rejected its current
// listeners.
func (s *Server) PolicyStatus(kind, namespace, name, service string, revision int64) (want, applied int, nacks []string) {
	s.mu.Lock()
	nodes := make([]*node, 0, len(s.nodes))
	for _, n := range s.nodes {
		nodes = append(nodes, n)
	}
	s.mu.Unlock()

	carried := policyRevisions[kind]
	views := make([]policyView, 0, len(nodes))
	for _, n := range nodes {
		n.push.Lock()
		v := policyView{meta: n.meta, listeners: n.version(resource.ListenerType), carries: carried == nil}
		if !n.closed && carried != nil && n.in != nil {
			rev, ok := carried(n.in, namespace, name, service)
			v.carries = ok && rev >= revision
		}
		closed := n.closed
		n.push.Unlock()
		if closed {
			continue
		}
		n.mu.Lock()
		v.acked = n.status.Acked[resource.ListenerType]
		if nack := n.status.LastNACK; nack != nil && nack.TypeURL == resource.ListenerType && nack.Version != "" {
			v.nack = nack.Version
			v.nackMessage = nack.Message
		}
		n.mu.Unlock()
		views = append(views, v)
	}
	return policyStatusOf(namespace, service, views)
}

// policyView is what PolicyStatus reads of one proxy.
type policyView struct {
	meta xdsmeta.Node
	// listeners is the Listener version pushed last, acked the one the
	// proxy last accepted, nack the last it rejected.
	listeners, acked, nack string
	nackMessage            string
	// carries reports whether the pushed listeners hold the policy.
	carries bool
}

func policyStatusOf(namespace, service string, views []policyView) (want, applied int, nacks []string) {
	for _, v := range views {
		// A gateway has no inbound listener but enforces its Gateways.
		if v.meta.Service != service || v.meta.Namespace != namespace || (v.meta.Inbound == "" && !v.meta.Ingress()) {
			continue
		}
		want++
		switch {
		case v.listeners != "" && v.listeners == v.acked && v.carries:
			applied++
		case v.nack != "" && v.nack == v.listeners:
			nacks = append(nacks, v.nackMessage)
		}
	}
	return want, applied, nacks
}
