package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/xdsclient"
)

// adsClient is a lean state-of-the-world ADS client that speaks the protocol
// the way proxy/xdsclient does: CDS and LDS as wildcards, EDS and RDS by the
// names the clusters and listeners give, SDS ROOTCA; every response decoded
// in full and ACKed with its version and nonce, or NACKed if it does not
// decode. It keeps the accepted resources so that the benchmark can tell
// when a change has arrived; it builds no runtime.
type adsClient struct {
	node *corev3.Node
	conn grpc.ClientConnInterface

	mu        sync.Mutex
	types     map[string]*typeState
	clusters  map[string]*clusterv3.Cluster
	listeners map[string]*listenerv3.Listener
	endpoints map[string]*endpointv3.ClusterLoadAssignment
	routes    map[string]*routev3.RouteConfiguration
	secrets   map[string]*tlsv3.Secret
	synced    chan struct{} // closed once every subscribed type was accepted
	isSynced  bool
	watches   []*watch
	acks      int
	nacks     int
	streams   int
	lastErr   error
}

type typeState struct {
	version, nonce string
	names          []string
	got            bool
}

// subscriptionOrder is proxy/xdsclient's: clusters and endpoints first.
var subscriptionOrder = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType, resource.SecretType}

func newADSClient(node *corev3.Node, conn grpc.ClientConnInterface) *adsClient {
	a := &adsClient{
		node: node, conn: conn,
		types:     map[string]*typeState{},
		clusters:  map[string]*clusterv3.Cluster{},
		listeners: map[string]*listenerv3.Listener{},
		endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		routes:    map[string]*routev3.RouteConfiguration{},
		secrets:   map[string]*tlsv3.Secret{},
		synced:    make(chan struct{}),
	}
	for _, t := range subscriptionOrder {
		a.types[t] = &typeState{}
	}
	a.types[resource.SecretType].names = []string{xdsmeta.SecretRootCA}
	return a
}

// run keeps a stream open until ctx ends, reconnecting after failures.
func (a *adsClient) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		err := a.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		a.mu.Lock()
		a.lastErr = err
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (a *adsClient) stream(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(a.conn).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	s := xdsclient.NewNodeOnFirst(ads, a.node)
	a.mu.Lock()
	a.streams++
	for _, ts := range a.types {
		ts.nonce = ""
	}
	a.mu.Unlock()
	for _, t := range subscriptionOrder {
		a.mu.Lock()
		skip := !wildcard(t) && len(a.types[t].names) == 0
		a.mu.Unlock()
		if skip {
			continue
		}
		if err := a.send(s, t, nil); err != nil {
			return err
		}
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		if err := a.handle(s, resp); err != nil {
			return err
		}
	}
}

func wildcard(t string) bool { return t == resource.ClusterType || t == resource.ListenerType }

type sender interface {
	Send(*discoveryv3.DiscoveryRequest) error
}

func (a *adsClient) send(s sender, t string, nack error) error {
	a.mu.Lock()
	ts := a.types[t]
	req := &discoveryv3.DiscoveryRequest{
		TypeUrl: t, VersionInfo: ts.version, ResponseNonce: ts.nonce,
		ResourceNames: slices.Clone(ts.names),
	}
	a.mu.Unlock()
	if nack != nil {
		req.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
	}
	return s.Send(req)
}

// handle decodes one response, ACKs (or NACKs) it, follows clusters and
// listeners to the endpoints and routes they name, and then tells the
// watches of this proxy that its state changed.
func (a *adsClient) handle(s sender, resp *discoveryv3.DiscoveryResponse) error {
	t := resp.GetTypeUrl()
	a.mu.Lock()
	ts, ok := a.types[t]
	if !ok {
		a.mu.Unlock()
		return nil
	}
	ts.nonce = resp.GetNonce()
	a.mu.Unlock()

	var (
		cl  map[string]*clusterv3.Cluster
		ls  map[string]*listenerv3.Listener
		eps map[string]*endpointv3.ClusterLoadAssignment
		rs  map[string]*routev3.RouteConfiguration
		ss  map[string]*tlsv3.Secret
		err error
	)
	switch t {
	case resource.ClusterType:
		cl, err = decode(resp, func() *clusterv3.Cluster { return new(clusterv3.Cluster) }, (*clusterv3.Cluster).GetName)
	case resource.ListenerType:
		ls, err = decode(resp, func() *listenerv3.Listener { return new(listenerv3.Listener) }, (*listenerv3.Listener).GetName)
	case resource.EndpointType:
		eps, err = decode(resp, func() *endpointv3.ClusterLoadAssignment { return new(endpointv3.ClusterLoadAssignment) }, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	case resource.RouteType:
		rs, err = decode(resp, func() *routev3.RouteConfiguration { return new(routev3.RouteConfiguration) }, (*routev3.RouteConfiguration).GetName)
	case resource.SecretType:
		ss, err = decode(resp, func() *tlsv3.Secret { return new(tlsv3.Secret) }, (*tlsv3.Secret).GetName)
	}
	if err != nil {
		a.mu.Lock()
		a.nacks++
		a.mu.Unlock()
		return a.send(s, t, err)
	}

	a.mu.Lock()
	follow := ""
	var names []string
	switch t {
	case resource.ClusterType:
		a.clusters = cl
		follow, names = resource.EndpointType, edsNames(cl)
	case resource.ListenerType:
		a.listeners = ls
		follow, names = resource.RouteType, rdsNames(ls)
	case resource.EndpointType:
		a.endpoints = eps
	case resource.RouteType:
		a.routes = rs
	case resource.SecretType:
		a.secrets = ss
	}
	ts.version = resp.GetVersionInfo()
	ts.got = true
	changed := follow != "" && !slices.Equal(a.types[follow].names, names)
	if changed {
		a.types[follow].names = names
	}
	a.mu.Unlock()

	if err := a.send(s, t, nil); err != nil {
		return err
	}
	if changed {
		if err := a.send(s, follow, nil); err != nil {
			return err
		}
	}
	acked := time.Now()

	a.mu.Lock()
	defer a.mu.Unlock()
	a.acks++
	if !a.isSynced && a.allReceived() {
		a.isSynced = true
		close(a.synced)
	}
	kept := a.watches[:0]
	for _, w := range a.watches {
		if w.ok(a) {
			w.ev.arrive(acked)
		} else {
			kept = append(kept, w)
		}
	}
	clear(a.watches[len(kept):])
	a.watches = kept
	return nil
}

func (a *adsClient) allReceived() bool {
	for t, ts := range a.types {
		if !ts.got && (wildcard(t) || len(ts.names) > 0) {
			return false
		}
	}
	return true
}

// addWatch makes ev wait for ok to hold at an ACK of this proxy. It reports
// false, and adds nothing, when ok holds already.
func (a *adsClient) addWatch(ev *event, ok func(*adsClient) bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ok(a) {
		return false
	}
	a.watches = append(a.watches, &watch{ev: ev, ok: ok})
	return true
}

// dropWatches forgets the proxy's watches (it is leaving) and returns how many there were.
func (a *adsClient) dropWatches() []*watch {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.watches
	a.watches = nil
	return w
}

func decode[M proto.Message](resp *discoveryv3.DiscoveryResponse, alloc func() M, name func(M) string) (map[string]M, error) {
	out := make(map[string]M, len(resp.GetResources()))
	for i, r := range resp.GetResources() {
		if r.GetTypeUrl() != resp.GetTypeUrl() {
			return nil, fmt.Errorf("resources[%d]: type %s in a %s response", i, r.GetTypeUrl(), resp.GetTypeUrl())
		}
		m := alloc()
		if err := r.UnmarshalTo(m); err != nil {
			return nil, fmt.Errorf("resources[%d]: %w", i, err)
		}
		n := name(m)
		if n == "" {
			return nil, fmt.Errorf("resources[%d]: no name", i)
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("resources[%d]: duplicate name %q", i, n)
		}
		out[n] = m
	}
	return out, nil
}

func edsNames(clusters map[string]*clusterv3.Cluster) []string {
	var names []string
	for name, c := range clusters {
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		if sn := c.GetEdsClusterConfig().GetServiceName(); sn != "" {
			name = sn
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return slices.Compact(names)
}

func rdsNames(listeners map[string]*listenerv3.Listener) []string {
	var names []string
	for _, l := range listeners {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().MessageIs(hcm) && f.GetTypedConfig().UnmarshalTo(hcm) == nil {
					if n := hcm.GetRds().GetRouteConfigName(); n != "" {
						names = append(names, n)
					}
				}
			}
		}
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// The predicates below read the accepted state; they run with a.mu held.

// hasEndpoint reports whether the load assignment of cluster lists addr.
func hasEndpoint(a *adsClient, cluster, addr string) bool {
	for _, loc := range a.endpoints[cluster].GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa != nil && fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()) == addr {
				return true
			}
		}
	}
	return false
}

// endpointCount is how many endpoints the load assignment of cluster lists.
func endpointCount(a *adsClient, cluster string) int {
	n := 0
	for _, loc := range a.endpoints[cluster].GetEndpoints() {
		n += len(loc.GetLbEndpoints())
	}
	return n
}

// inboundHTTP2 reports whether the inbound cluster speaks HTTP/2 to the app.
func inboundHTTP2(a *adsClient, cluster string) bool {
	c := a.clusters[cluster]
	if c == nil {
		return false
	}
	opts := &upstreamhttpv3.HttpProtocolOptions{}
	anyOpts := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if anyOpts == nil || anyOpts.UnmarshalTo(opts) != nil {
		return false
	}
	return opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

// listenerFilter is the name of the first network filter of a listener.
func listenerFilter(a *adsClient, listener string) string {
	l := a.listeners[listener]
	if l == nil || len(l.GetFilterChains()) == 0 || len(l.GetFilterChains()[0].GetFilters()) == 0 {
		return ""
	}
	return l.GetFilterChains()[0].GetFilters()[0].GetName()
}

// canaryWeight is the weight the route named "canary" of a route
// configuration gives cluster, or 0 when there is no such route.
func canaryWeight(a *adsClient, routeConfig, cluster string) int {
	for _, vh := range a.routes[routeConfig].GetVirtualHosts() {
		for _, rt := range vh.GetRoutes() {
			if rt.GetName() != "canary" {
				continue
			}
			for _, wc := range rt.GetRoute().GetWeightedClusters().GetClusters() {
				if wc.GetName() == cluster {
					return int(wc.GetWeight().GetValue())
				}
			}
		}
	}
	return 0
}
