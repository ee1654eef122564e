package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/proto"
)

// Cache lets the translations of many proxies share the resources that
// depend on one service alone: its outbound cluster, load assignment and
// route, those of its subsets, and the ROOTCA secret that every proxy gets.
// Every proxy that routes to a service then holds the same messages instead
// of its own copies, and their deterministic encoding, which versions hash,
// is made once instead of once per proxy.
//
// An entry is reused only while what it was built from is unchanged, by
// content: for a cluster the trust domain, the service's protocol and
// DestinationPolicy and the retry budget Routes set on it; for a load
// assignment the ready workloads' IDs, versions and addresses (of those in
// the subset, for a subset's); for a route the service's protocol and Route
// and the DestinationPolicies of the services it sends to; for the secret
// the bundle's bytes. Cache.ForNode therefore returns exactly what ForNode
// returns. A Cache is safe for concurrent use.
type Cache struct {
	mu       sync.Mutex
	services map[ServiceKey]*serviceEntry
	secret   *sharedResource // keyed by secretBundle
	// secretBundle is the bundle the secret was built from.
	secretBundle []byte
}

// serviceEntry holds the shared resources of one service: its cluster,
// load assignment and route, and those of its subsets, by resource name
// and type, each with the content key of what it was built from.
type serviceEntry struct {
	shared map[sharedName]*keyedResource
}

// sharedName names a shared resource of a service: its kind, as type URLs
// would, and its name.
type sharedName struct{ kind, name string }

// keyedResource is a shared resource and the content it was built from.
type keyedResource struct {
	key string
	res *sharedResource
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

// sharedOf hands out the resource name of kind for the service key: the
// cached one while contentKey is unchanged, else a new one from build.
func (t *translation) sharedOf(key ServiceKey, kind, name string, contentKey func() (string, error), build func() types.Resource) types.Resource {
	if t.cache == nil {
		return build()
	}
	ck, err := contentKey()
	if err != nil {
		if t.err == nil {
			t.err = fmt.Errorf("%s %q: %w", kind, name, err)
		}
		return build()
	}
	sn := sharedName{kind, name}
	t.cache.mu.Lock()
	var r *sharedResource
	if kr := t.cache.entry(key).shared[sn]; kr != nil && kr.key == ck {
		r = kr.res
	}
	t.cache.mu.Unlock()
	if r == nil {
		if r = t.shareBuilt(build()); r == nil {
			return nil
		}
		t.cache.mu.Lock()
		e := t.cache.entry(key)
		if e.shared == nil {
			e.shared = map[sharedName]*keyedResource{}
		}
		e.shared[sn] = &keyedResource{key: ck, res: r}
		t.cache.mu.Unlock()
	}
	return t.use(r)
}

// contentKey encodes what a resource is built from: strings as they are,
// anything else as JSON, nil as nothing. Parts are separated by NUL, which
// neither names nor JSON hold unescaped.
func contentKey(parts ...any) func() (string, error) {
	return func() (string, error) {
		var b strings.Builder
		for _, p := range parts {
			switch v := p.(type) {
			case string:
				b.WriteString(v)
			case v1alpha1.Protocol:
				b.WriteString(string(v))
			default:
				if !isNil(v) {
					j, err := json.Marshal(v)
					if err != nil {
						return "", err
					}
					b.Write(j)
				}
			}
			b.WriteByte(0)
		}
		return b.String(), nil
	}
}

// isNil reports whether v is nil or a nil pointer of the kinds contentKey
// is given.
func isNil(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case *v1alpha1.RouteSpec:
		return v == nil
	case *v1alpha1.DestinationPolicySpec:
		return v == nil
	case *v1alpha1.RetryBudget:
		return v == nil
	case []*v1alpha1.DestinationPolicySpec:
		for _, p := range v {
			if p != nil {
				return false
			}
		}
		return true
	}
	return false
}

// clusterOf is the cluster of a service, or of one of its subsets. It reads
// the trust domain, the service's protocol and DestinationPolicy, and the
// retry budget Routes set on it.
func (t *translation) clusterOf(key ServiceKey, subset string) types.Resource {
	name := targetCluster(key, subset)
	return t.sharedOf(key, "cluster", name,
		contentKey(t.in.TrustDomain, t.in.protocol(key), t.in.Policies[key], t.in.retryBudget(name)),
		func() types.Resource { return t.outboundCluster(key, subset) })
}

// routeOf is the RouteConfiguration of a service's upstream port. It reads
// the service's protocol and Route, and the DestinationPolicies of the
// services it routes to.
func (t *translation) routeOf(key ServiceKey) types.Resource {
	dests := append([]ServiceKey{key}, t.in.RouteTargets(key)...)
	policies := make([]*v1alpha1.DestinationPolicySpec, len(dests))
	for i, d := range dests {
		policies[i] = t.in.Policies[d]
	}
	return t.sharedOf(key, "route", xdsmeta.OutboundRoute(key.Name, key.Namespace),
		contentKey(t.in.protocol(key), t.in.Routes[key], policies),
		func() types.Resource { return t.outboundRoute(key) })
}

// loadAssignmentOf is the load assignment of a service, or of one of its
// subsets. It reads the ready workloads' IDs, versions and addresses, and
// for a subset which of them are in it.
func (t *translation) loadAssignmentOf(key ServiceKey, subset *v1alpha1.Subset) types.Resource {
	name := xdsmeta.OutboundCluster(key.Name, key.Namespace)
	if subset != nil {
		name = targetCluster(key, subset.Name)
	}
	return t.sharedOf(key, "endpoints", name, func() (string, error) {
		var b strings.Builder
		for _, w := range t.in.readyWorkloads(key) {
			if subset != nil && !inSubset(w.GetLabels(), w.GetVersion(), subset.Labels) {
				continue
			}
			b.WriteString(w.GetId())
			b.WriteByte(0)
			b.WriteString(w.GetVersion())
			b.WriteByte(0)
			b.WriteString(w.GetAddress())
			b.WriteByte(0)
		}
		return b.String(), nil
	}, func() types.Resource { return t.loadAssignment(key, subset) })
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
