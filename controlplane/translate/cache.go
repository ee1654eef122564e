package translate

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/proto"
)

// Cache lets the translations of many proxies share the resources that
// depend on one service alone: its outbound cluster, load assignment and
// route, and the ROOTCA secret that every proxy gets. Every proxy that
// routes to a service then holds the same messages instead of its own
// copies, and their deterministic encoding, which versions hash, is made
// once instead of once per proxy.
//
// An entry is reused only while what it was built from is unchanged, by
// content: the trust domain and the service's protocol for a cluster, the
// ready workloads' IDs, versions and addresses for a load assignment, the
// bundle's bytes for the secret. Cache.ForNode therefore returns exactly
// what ForNode returns. A Cache is safe for concurrent use.
type Cache struct {
	mu       sync.Mutex
	services map[ServiceKey]*serviceEntry
	secret   *sharedResource // keyed by secretBundle
	// secretBundle is the bundle the secret was built from.
	secretBundle []byte
}

// serviceEntry holds the shared resources of one service.
type serviceEntry struct {
	// The cluster and route are built from the trust domain and protocol.
	trustDomain string
	protocol    v1alpha1.Protocol
	cluster     *sharedResource
	route       *sharedResource
	// The load assignment is built from the ready workloads.
	ready []endpointKey
	cla   *sharedResource
}

// endpointKey is what a load assignment reads of a workload.
type endpointKey struct{ id, version, address string }

// sharedResource is a resource and its deterministic encoding.
type sharedResource struct {
	msg     types.Resource
	encoded []byte
}

// NewCache returns an empty Cache.
func NewCache() *Cache {
	return &Cache{services: map[ServiceKey]*serviceEntry{}}
}

// ForNode is the package's ForNode, sharing what it can through c.
func (c *Cache) ForNode(in *Input, node xdsmeta.Node) (*Resources, error) {
	return forNode(in, node, c)
}

// Prune forgets the services that in neither declares nor has workloads of.
func (c *Cache) Prune(in *Input) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key := range c.services {
		_, declared := in.Services[key]
		_, registered := in.Workloads[key]
		if !declared && !registered {
			delete(c.services, key)
		}
	}
}

func (c *Cache) entry(key ServiceKey) *serviceEntry {
	e := c.services[key]
	if e == nil {
		e = &serviceEntry{}
		c.services[key] = e
	}
	return e
}

// share encodes m deterministically, as version does.
func share(m types.Resource) (*sharedResource, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %q: %w", resourceName(m), err)
	}
	return &sharedResource{msg: m, encoded: b}, nil
}

// The methods below hand out a resource of the translation, from the cache
// when there is one, and record the encoding of shared ones for version.

func (t *translation) clusterOf(key ServiceKey) types.Resource {
	if t.cache == nil {
		return t.outboundCluster(key)
	}
	td, proto := t.in.TrustDomain, t.in.protocol(key)
	t.cache.mu.Lock()
	e := t.cache.entry(key)
	r := e.cluster
	if r == nil || e.trustDomain != td || e.protocol != proto {
		r = nil
	}
	t.cache.mu.Unlock()
	if r == nil {
		if r = t.shareBuilt(t.outboundCluster(key)); r == nil {
			return nil
		}
		t.cache.mu.Lock()
		e := t.cache.entry(key)
		e.trustDomain, e.protocol, e.cluster = td, proto, r
		t.cache.mu.Unlock()
	}
	return t.use(r)
}

func (t *translation) routeOf(key ServiceKey) types.Resource {
	if t.cache == nil {
		return t.outboundRoute(key)
	}
	// A route depends on the service's name alone.
	t.cache.mu.Lock()
	r := t.cache.entry(key).route
	t.cache.mu.Unlock()
	if r == nil {
		if r = t.shareBuilt(t.outboundRoute(key)); r == nil {
			return nil
		}
		t.cache.mu.Lock()
		t.cache.entry(key).route = r
		t.cache.mu.Unlock()
	}
	return t.use(r)
}

func (t *translation) loadAssignmentOf(key ServiceKey) types.Resource {
	if t.cache == nil {
		return t.loadAssignment(key)
	}
	ready := t.in.readyWorkloads(key)
	t.cache.mu.Lock()
	e := t.cache.entry(key)
	r := e.cla
	if r == nil || !sameEndpoints(e.ready, ready) {
		r = nil
	}
	t.cache.mu.Unlock()
	if r == nil {
		if r = t.shareBuilt(t.loadAssignment(key)); r == nil {
			return nil
		}
		keys := make([]endpointKey, len(ready))
		for i, w := range ready {
			keys[i] = endpointKey{w.GetId(), w.GetVersion(), w.GetAddress()}
		}
		t.cache.mu.Lock()
		e := t.cache.entry(key)
		e.ready, e.cla = keys, r
		t.cache.mu.Unlock()
	}
	return t.use(r)
}

func (t *translation) rootCAOf() types.Resource {
	if t.cache == nil {
		return t.rootCA()
	}
	bundle := t.in.TrustBundlePEM
	t.cache.mu.Lock()
	r := t.cache.secret
	if r == nil || !bytes.Equal(t.cache.secretBundle, bundle) {
		r = nil
	}
	t.cache.mu.Unlock()
	if r == nil {
		if r = t.shareBuilt(t.rootCA()); r == nil {
			return nil
		}
		t.cache.mu.Lock()
		t.cache.secret, t.cache.secretBundle = r, bundle
		t.cache.mu.Unlock()
	}
	return t.use(r)
}

// shareBuilt encodes a resource just built for the cache. It returns nil
// when the translation has failed: nothing is cached then.
func (t *translation) shareBuilt(m types.Resource) *sharedResource {
	if t.err != nil {
		return nil
	}
	r, err := share(m)
	if err != nil {
		t.err = err
		return nil
	}
	return r
}

// use records the encoding of a shared resource for version and returns it.
func (t *translation) use(r *sharedResource) types.Resource {
	if t.encoded == nil {
		t.encoded = map[types.Resource][]byte{}
	}
	t.encoded[r.msg] = r.encoded
	return r.msg
}

// sameEndpoints reports whether keys describe the workloads ws, in order.
func sameEndpoints(keys []endpointKey, ws []*meshv1.Workload) bool {
	if len(keys) != len(ws) {
		return false
	}
	for i, w := range ws {
		if keys[i] != (endpointKey{w.GetId(), w.GetVersion(), w.GetAddress()}) {
			return false
		}
	}
	return true
}
