package translate

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/proto"
)

// Resources is the xDS configuration of one proxy. Each slice is sorted by
// resource name. Once built, Resources are shared with the snapshot cache:
// treat them as read-only, or their versions no longer describe them.
type Resources struct {
	Listeners []types.Resource // type.googleapis.com/envoy.config.listener.v3.Listener
	Routes    []types.Resource // type.googleapis.com/envoy.config.route.v3.RouteConfiguration
	Clusters  []types.Resource // type.googleapis.com/envoy.config.cluster.v3.Cluster
	Endpoints []types.Resource // type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
	Secrets   []types.Resource // type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret

	versions map[resource.Type]string
}

// ByType returns the resources keyed by type URL, the shape cache.NewSnapshot takes.
func (r *Resources) ByType() map[resource.Type][]types.Resource {
	return map[resource.Type][]types.Resource{
		resource.ListenerType: r.Listeners,
		resource.RouteType:    r.Routes,
		resource.ClusterType:  r.Clusters,
		resource.EndpointType: r.Endpoints,
		resource.SecretType:   r.Secrets,
	}
}

// Version is a hash of the resources of one type URL: equal versions mean
// byte-identical resources. It is "" for a type Resources does not hold.
func (r *Resources) Version(typeURL resource.Type) string { return r.versions[typeURL] }

// ForNode translates the mesh's state into the configuration of the proxy
// that node describes. It reads in and node only: the same arguments always
// give the same resources and versions.
func ForNode(in *Input, node xdsmeta.Node) (*Resources, error) {
	return forNode(in, node, nil)
}

// forNode is ForNode, sharing resources through c when it is not nil.
func forNode(in *Input, node xdsmeta.Node, c *Cache) (*Resources, error) {
	if err := in.check(); err != nil {
		return nil, fmt.Errorf("translate: %w", err)
	}
	t := &translation{in: in, node: node, cache: c}
	r, err := t.resources()
	if err != nil {
		return nil, fmt.Errorf("translate: node %q: %w", node.ID, err)
	}
	return r, nil
}

// translation is one ForNode call.
type translation struct {
	builder
	in   *Input
	node xdsmeta.Node
	// cache, if set, hands out the resources shared between proxies;
	// encoded holds the encoding of those it handed out.
	cache   *Cache
	encoded map[types.Resource][]byte
	// egressGateway holds, on an egress gateway, what its inbound route
	// sends to (egress.go).
	egressGateway *egressConfig
}

func (t *translation) resources() (*Resources, error) {
	if t.node.Proxyless {
		return t.proxyless()
	}
	r := &Resources{}
	self := ServiceKey{Namespace: t.node.Namespace, Name: t.node.Service}
	if t.node.Inbound != "" {
		l, c, err := t.inbound(self)
		if err != nil {
			return nil, err
		}
		r.Listeners = append(r.Listeners, l)
		r.Clusters = append(r.Clusters, c)
		if e := t.egressGateway; e != nil {
			for _, c := range e.clusters {
				r.Clusters = append(r.Clusters, c)
			}
			for _, s := range e.secrets {
				r.Secrets = append(r.Secrets, s)
			}
		}
	}

	// outbound holds the services this proxy can reach: a cluster and a
	// load assignment each. routed holds those behind an HTTP upstream
	// listener: a RouteConfiguration each.
	outbound := map[ServiceKey]bool{}
	routed := map[ServiceKey]bool{}
	for _, u := range t.node.Upstreams {
		key := ServiceKey{Namespace: u.Namespace, Name: u.Service}
		l, err := t.outboundListener(u, key)
		if err != nil {
			return nil, err
		}
		r.Listeners = append(r.Listeners, l)
		outbound[key] = true
		if t.in.protocol(key).IsHTTP() {
			routed[key] = true
		}
	}
	if t.transparent() {
		c, err := t.outboundCapture()
		if err != nil {
			return nil, err
		}
		r.Listeners = append(r.Listeners, c.listener)
		r.Routes = append(r.Routes, c.route)
		r.Clusters = append(r.Clusters, c.passthrough)
		addEgress(r, outbound, c.egress)
		for _, key := range c.reachable {
			outbound[key] = true
		}
		for _, key := range c.routed {
			routed[key] = true
		}
	}
	if t.node.HTTPProxy != "" {
		l, rc, reachable, err := t.httpProxy()
		if err != nil {
			return nil, err
		}
		r.Listeners = append(r.Listeners, l)
		r.Routes = append(r.Routes, rc)
		addEgress(r, outbound, t.httpProxyEgress(rc))
		for _, key := range reachable {
			outbound[key] = true
		}
	}
	if t.node.Ingress() {
		reachable, err := t.ingress(r)
		if err != nil {
			return nil, err
		}
		for _, key := range reachable {
			outbound[key] = true
		}
	}
	if err := checkListenAddresses(r.Listeners); err != nil {
		return nil, err
	}
	for _, key := range slices.SortedFunc(maps.Keys(routed), compareKeys) {
		r.Routes = append(r.Routes, t.routeOf(key))
	}
	// A Route sends traffic to the services it names too: the proxy needs
	// their clusters and endpoints.
	for _, key := range slices.Collect(maps.Keys(outbound)) {
		for _, target := range t.in.RouteTargets(key) {
			outbound[target] = true
		}
	}
	for _, key := range slices.SortedFunc(maps.Keys(outbound), compareKeys) {
		r.Clusters = append(r.Clusters, t.clusterOf(key, ""))
		r.Endpoints = append(r.Endpoints, t.loadAssignmentOf(key, nil))
		for i, ss := range t.in.subsetsOf(key) {
			r.Clusters = append(r.Clusters, t.clusterOf(key, ss.Name))
			r.Endpoints = append(r.Endpoints, t.loadAssignmentOf(key, &t.in.subsetsOf(key)[i]))
		}
	}
	if c := t.tracingCluster(r.Listeners); c != nil {
		r.Clusters = append(r.Clusters, c)
	}
	r.Secrets = append(r.Secrets, t.rootCAOf())
	if t.err != nil {
		return nil, t.err
	}

	r.versions = make(map[resource.Type]string, 5)
	for typeURL, items := range r.ByType() {
		slices.SortFunc(items, func(a, b types.Resource) int { return cmp.Compare(resourceName(a), resourceName(b)) })
		v, err := version(items, t.encoded)
		if err != nil {
			return nil, fmt.Errorf("version %s: %w", typeURL, err)
		}
		r.versions[typeURL] = v
	}
	return r, nil
}

// check refuses an Input that no proxy could use.
func (in *Input) check() error {
	switch {
	case in == nil:
		return errors.New("input is nil")
	case in.TrustDomain == "":
		return errors.New("input: trust domain is empty")
	case len(in.TrustBundlePEM) == 0:
		return errors.New("input: trust bundle is empty")
	}
	return nil
}

// protocol is how a service speaks: its first port's protocol, or HTTP for
// a service that has no Service resource (yet).
func (in *Input) protocol(key ServiceKey) v1alpha1.Protocol {
	if s := in.Services[key]; s != nil && len(s.Ports) > 0 && s.Ports[0].Protocol != "" {
		return s.Ports[0].Protocol
	}
	return v1alpha1.ProtocolHTTP
}

// knownServices lists, sorted, the services of the mesh: those with a
// Service resource and those with registered workloads.
func (in *Input) knownServices() []ServiceKey {
	keys := make([]ServiceKey, 0, len(in.Services)+len(in.Workloads))
	for k := range in.Services {
		keys = append(keys, k)
	}
	for k, ws := range in.Workloads {
		if _, ok := in.Services[k]; !ok && len(ws) > 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

// readyWorkloads returns the workloads of a service that take traffic, by ID.
func (in *Input) readyWorkloads(key ServiceKey) []*meshv1.Workload {
	all := in.Workloads[key]
	ready := make([]*meshv1.Workload, 0, len(all))
	for _, w := range all {
		if w.GetReady() {
			ready = append(ready, w)
		}
	}
	byID := func(a, b *meshv1.Workload) int { return cmp.Compare(a.GetId(), b.GetId()) }
	if !slices.IsSortedFunc(ready, byID) {
		slices.SortFunc(ready, byID)
	}
	return ready
}

func (t *translation) spiffeID(key ServiceKey) string {
	return spiffe.ID{TrustDomain: t.in.TrustDomain, Namespace: key.Namespace, Service: key.Name}.String()
}

func compareKeys(a, b ServiceKey) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

func resourceName(r types.Resource) string {
	switch r := r.(type) {
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case interface{ GetName() string }:
		return r.GetName()
	}
	return ""
}

// version hashes the deterministic encoding of a sorted list of resources.
// Each resource is length-prefixed so that no two lists share an encoding.
// encoded holds encodings already made, by resource.
func version(items []types.Resource, encoded map[types.Resource][]byte) (string, error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	var buf []byte
	var n [8]byte
	for _, r := range items {
		b, ok := encoded[r]
		if !ok {
			var err error
			if buf, err = opts.MarshalAppend(buf[:0], r); err != nil {
				return "", fmt.Errorf("marshal %q: %w", resourceName(r), err)
			}
			b = buf
		}
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}

// host is a service's canonical mesh name.
func host(key ServiceKey) string { return xdsmeta.ServiceHost(key.Name, key.Namespace) }
