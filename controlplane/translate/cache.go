package translate

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"weak"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
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
// the bundle's bytes.
//
// What is built for one proxy alone (its listeners, its inbound cluster,
// the route of its HTTP proxy port) is interned after translation: a
// resource whose deterministic encoding another proxy's translation already
// produced is replaced by that proxy's message, so replicas of a service,
// which bind the same upstream ports and app address, hold one copy between
// them. A listener that stays the proxy's own (the inbound one binds the
// workload's address) still shares the typed configs of its filters and
// TLS context, by content likewise. Equal encodings are equal messages, so
// no proxy is handed anything its own translation did not produce.
// Cache.ForNode therefore returns exactly what ForNode returns. A Cache is
// safe for concurrent use.
type Cache struct {
	mu       sync.Mutex
	services map[ServiceKey]*serviceEntry
	secret   *sharedResource // keyed by secretBundle
	// secretBundle is the bundle the secret was built from.
	secretBundle []byte
	// shared holds the messages of services and secret above: interning
	// skips them, they are shared already.
	shared map[types.Resource]bool
	// interned holds the per-proxy resources by content. The references
	// are weak: an entry goes when the last proxy holding its message
	// drops it (see forget), so the table never outgrows the snapshots.
	interned map[internKey]internRef
	// anys holds, weakly too, the typed configs of the filters of interned
	// listeners, by content.
	anys map[anyKey]weak.Pointer[anypb.Any]
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
	return &Cache{
		services: map[ServiceKey]*serviceEntry{},
		shared:   map[types.Resource]bool{},
		interned: map[internKey]internRef{},
		anys:     map[anyKey]weak.Pointer[anypb.Any]{},
	}
}

// ForNode is the package's ForNode, sharing what it can through c.
func (c *Cache) ForNode(in *Input, node xdsmeta.Node) (*Resources, error) {
	r, err := forNode(in, node, c)
	if err != nil {
		return nil, err
	}
	if err := c.internAll(r); err != nil {
		return nil, fmt.Errorf("translate: node %q: %w", node.ID, err)
	}
	return r, nil
}

// Prune forgets the services that in neither declares nor has workloads of.
func (c *Cache) Prune(in *Input) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, e := range c.services {
		_, declared := in.Services[key]
		_, registered := in.Workloads[key]
		if !declared && !registered {
			for _, kr := range e.shared {
				delete(c.shared, kr.res.msg)
			}
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
		if old := e.shared[sn]; old != nil {
			delete(t.cache.shared, old.res.msg)
		}
		e.shared[sn] = &keyedResource{key: ck, res: r}
		t.cache.shared[r.msg] = true
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
		if old := t.cache.secret; old != nil {
			delete(t.cache.shared, old.msg)
		}
		t.cache.secret, t.cache.secretBundle = r, bundle
		t.cache.shared[r.msg] = true
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

// internKey names a per-proxy resource by content: its message type and
// the SHA-256 of its deterministic encoding.
type internKey struct {
	kind protoreflect.FullName
	sum  [sha256.Size]byte
}

// internRef is a weak reference to an interned message.
type internRef interface {
	// get returns the message, or nil once nothing else holds it.
	get() types.Resource
}

// weakRef is an internRef to a message of type P.
type weakRef[T any, P interface {
	*T
	types.Resource
}] struct{ p weak.Pointer[T] }

func (w weakRef[T, P]) get() types.Resource {
	if v := w.p.Value(); v != nil {
		return P(v)
	}
	return nil
}

// internAll replaces each resource of r that is not shared already with
// the message of equal content another translation produced, if one is
// still held, and offers the others for later translations to share.
func (c *Cache) internAll(r *Resources) error {
	var buf []byte
	for _, items := range [][]types.Resource{r.Listeners, r.Routes, r.Clusters, r.Endpoints, r.Secrets} {
		for i, m := range items {
			c.mu.Lock()
			shared := c.shared[m]
			c.mu.Unlock()
			if shared {
				continue
			}
			var err error
			if items[i], buf, err = c.intern(m, buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// intern returns the message of m's content that the cache holds, or m,
// which it then holds. buf is scratch space for the encoding, returned for
// reuse. Messages of types interning does not know are returned as they are.
func (c *Cache) intern(m types.Resource, buf []byte) (types.Resource, []byte, error) {
	switch v := m.(type) {
	case *listenerv3.Listener:
		return internAs(c, v, buf)
	case *routev3.RouteConfiguration:
		return internAs(c, v, buf)
	case *clusterv3.Cluster:
		return internAs(c, v, buf)
	case *endpointv3.ClusterLoadAssignment:
		return internAs(c, v, buf)
	case *tlsv3.Secret:
		return internAs(c, v, buf)
	}
	return m, buf, nil
}

// internAs is intern for a message of type P. A new message is held weakly,
// with a cleanup that forgets its entry once it is collected.
func internAs[T any, P interface {
	*T
	types.Resource
}](c *Cache, m P, buf []byte) (types.Resource, []byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(buf[:0], m)
	if err != nil {
		return nil, buf, fmt.Errorf("marshal %q: %w", resourceName(m), err)
	}
	key := internKey{kind: m.ProtoReflect().Descriptor().FullName(), sum: sha256.Sum256(b)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ref, ok := c.interned[key]; ok {
		if held := ref.get(); held != nil {
			return held, b, nil
		}
	}
	if l, ok := any(m).(*listenerv3.Listener); ok {
		// Not held by anyone yet: its filters may still be swapped.
		c.internFilterConfigs(l)
	}
	c.interned[key] = weakRef[T, P]{weak.Make((*T)(m))}
	runtime.AddCleanup((*T)(m), c.forget, key)
	return m, b, nil
}

// internFilterConfigs replaces the typed configs of l's filters and
// transport sockets with equal ones the cache holds: a listener that is
// the proxy's own, such as the inbound one, which binds the workload's own
// address, still carries the same connection manager and TLS context as
// its service's other replicas. l must be this translation's own, held by
// no one else yet (its filters are rewritten); c.mu is held.
func (c *Cache) internFilterConfigs(l *listenerv3.Listener) {
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if tc, ok := f.GetConfigType().(*listenerv3.Filter_TypedConfig); ok {
				tc.TypedConfig = c.internAny(tc.TypedConfig)
			}
		}
		if ts, ok := fc.GetTransportSocket().GetConfigType().(*corev3.TransportSocket_TypedConfig); ok {
			ts.TypedConfig = c.internAny(ts.TypedConfig)
		}
	}
}

// anyKey names a typed config by content: its type URL and the SHA-256 of
// its value, an encoding already made.
type anyKey struct {
	typeURL string
	sum     [sha256.Size]byte
}

// internAny returns the typed config of a's content that the cache holds,
// or a, which it then holds (weakly, as interned resources). c.mu is held.
func (c *Cache) internAny(a *anypb.Any) *anypb.Any {
	if a == nil {
		return nil
	}
	key := anyKey{typeURL: a.GetTypeUrl(), sum: sha256.Sum256(a.GetValue())}
	if held := c.anys[key].Value(); held != nil {
		return held
	}
	c.anys[key] = weak.Make(a)
	runtime.AddCleanup(a, c.forgetAny, key)
	return a
}

// forgetAny drops the entry of key if its typed config is gone (see forget).
func (c *Cache) forgetAny(key anyKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.anys[key]; ok && p.Value() == nil {
		delete(c.anys, key)
	}
}

// forget drops the entry of key if its message is gone. It runs on the
// runtime's cleanup goroutine once an interned message is collected; by
// then key may name a newer message of the same content, which stays.
func (c *Cache) forget(key internKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ref, ok := c.interned[key]; ok && ref.get() == nil {
		delete(c.interned, key)
	}
}
