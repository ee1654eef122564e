// Package xdsclient is the proxy's side of ADS: one gRPC stream carrying
// every resource type, state of the world. It subscribes to listeners and
// clusters, follows them to the route configurations and endpoints they name,
// hands each candidate state to the runtime, and ACKs what the runtime
// applied or NACKs with the runtime's reason. Across reconnects it keeps the
// last accepted state, so traffic flows on it while the control plane is away.
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/runtime"
)

// Applier takes a complete candidate state and applies all of it or none.
type Applier interface {
	Apply(*runtime.Resources) error
}

// Options configure a Client.
type Options struct {
	Node    *corev3.Node
	Conn    grpc.ClientConnInterface
	Runtime Applier
	Log     *slog.Logger
	// OnEvent, if set, is told of connects, ACKs and NACKs (for metrics).
	OnEvent func(Event)
}

// Event is something the client did, for metrics and logs.
type Event struct {
	Kind    string // "connected", "disconnected", "ack", "nack"
	TypeURL string
	Version string
	Err     error
}

// subscriptionOrder is the order in which types are first requested, so
// clusters and their endpoints exist before listeners and routes point at them.
var subscriptionOrder = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType, resource.SecretType}

// Client is an ADS client. It is used by one goroutine: Run.
type Client struct {
	opts Options

	mu       sync.Mutex
	accepted *runtime.Resources
	types    map[string]*typeState
	synced   bool
}

type typeState struct {
	version string // last accepted
	nonce   string // last received
	names   []string
	got     bool // a response was accepted at least once
}

// New makes a client; Run starts it.
func New(opts Options) *Client {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.OnEvent == nil {
		opts.OnEvent = func(Event) {}
	}
	c := &Client{opts: opts, types: map[string]*typeState{}, accepted: emptyResources()}
	for _, t := range subscriptionOrder {
		c.types[t] = &typeState{}
	}
	c.types[resource.SecretType].names = []string{xdsmeta.SecretRootCA}
	return c
}

// Synced reports whether every subscribed type has been received and applied once.
func (c *Client) Synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synced
}

// Versions returns the last accepted version of each type.
func (c *Client) Versions() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.types))
	for t, s := range c.types {
		out[t] = s.version
	}
	return out
}

// Run keeps a stream open until ctx is done, reconnecting with jittered
// exponential backoff. It returns nil when ctx ends.
func (c *Client) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := c.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.opts.OnEvent(Event{Kind: "disconnected", Err: err})
		if time.Since(start) > 30*time.Second {
			backoff = 100 * time.Millisecond
		}
		wait := backoff/2 + time.Duration(mathrand.Int64N(int64(backoff)))
		c.opts.Log.Warn("xDS stream ended; keeping last good config and reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (c *Client) stream(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(c.opts.Conn).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("xds: open stream: %w", err)
	}
	s := NewNodeOnFirst(ads, c.opts.Node)
	// A new stream starts afresh: nonces belong to the old one.
	c.mu.Lock()
	for _, ts := range c.types {
		ts.nonce = ""
	}
	c.mu.Unlock()
	for _, t := range subscriptionOrder {
		// Endpoints and routes are asked for by name once clusters and
		// listeners name them; an empty list would be a legacy wildcard.
		if !c.wildcard(t) && c.namesEmpty(t) {
			continue
		}
		if err := c.send(s, t, nil); err != nil {
			return err
		}
	}
	connected := false
	for {
		resp, err := s.Recv()
		if err != nil {
			return fmt.Errorf("xds: receive: %w", err)
		}
		if !connected {
			connected = true
			c.opts.Log.Info("xDS stream connected")
			c.opts.OnEvent(Event{Kind: "connected"})
		}
		if err := c.handle(s, resp); err != nil {
			return err
		}
	}
}

type sender interface {
	Send(*discoveryv3.DiscoveryRequest) error
}

// NodeOnFirst sends the node with the stream's first request only, as
// Envoy's set_node_on_first_message_only does: the server keeps it for the
// stream, and with every ACK it would decode the node's metadata again.
// Requests must be sent through it from one goroutine.
type NodeOnFirst struct {
	discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node *corev3.Node
	sent bool
}

// NewNodeOnFirst wraps s to send node with its first request.
func NewNodeOnFirst(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, node *corev3.Node) *NodeOnFirst {
	return &NodeOnFirst{AggregatedDiscoveryService_StreamAggregatedResourcesClient: s, node: node}
}

// Send sends req, with the node if it is the stream's first request.
func (s *NodeOnFirst) Send(req *discoveryv3.DiscoveryRequest) error {
	if !s.sent {
		req.Node = s.node
		s.sent = true
	}
	return s.AggregatedDiscoveryService_StreamAggregatedResourcesClient.Send(req)
}

func (c *Client) send(s sender, typeURL string, nack error) error {
	c.mu.Lock()
	ts := c.types[typeURL]
	req := &discoveryv3.DiscoveryRequest{
		TypeUrl:       typeURL,
		VersionInfo:   ts.version,
		ResponseNonce: ts.nonce,
		ResourceNames: slices.Clone(ts.names),
	}
	c.mu.Unlock()
	if nack != nil {
		req.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
	}
	if err := s.Send(req); err != nil {
		return fmt.Errorf("xds: send %s request: %w", shortType(typeURL), err)
	}
	return nil
}

// handle applies one response and answers it. Following a new cluster or
// listener set, it re-subscribes endpoints or routes with the new names.
func (c *Client) handle(s sender, resp *discoveryv3.DiscoveryResponse) error {
	t := resp.GetTypeUrl()
	c.mu.Lock()
	ts, ok := c.types[t]
	if !ok {
		c.mu.Unlock()
		c.opts.Log.Warn("xDS response of an unsubscribed type ignored", "type", t)
		return nil
	}
	ts.nonce = resp.GetNonce()
	candidate, err := withType(c.accepted, t, resp)
	c.mu.Unlock()
	if err == nil {
		err = c.opts.Runtime.Apply(candidate)
	}
	if err != nil {
		c.opts.Log.Error("xDS update rejected (NACK); keeping last good config", "type", shortType(t), "version", resp.GetVersionInfo(), "err", err)
		c.opts.OnEvent(Event{Kind: "nack", TypeURL: t, Version: resp.GetVersionInfo(), Err: err})
		return c.send(s, t, err)
	}
	c.mu.Lock()
	c.accepted = candidate
	ts.version = resp.GetVersionInfo()
	ts.got = true
	follow := ""
	var names []string
	switch t {
	case resource.ClusterType:
		follow, names = resource.EndpointType, edsNames(candidate)
	case resource.ListenerType:
		follow, names = resource.RouteType, rdsNames(candidate)
	}
	// A set that shrinks to nothing is followed too, or the last names would
	// stay subscribed and their resources applied. Once names have been sent
	// on a stream an empty list unsubscribes: only a stream's first request
	// of a type can be a legacy wildcard, and stream never sends it empty.
	changed := follow != "" && !slices.Equal(c.types[follow].names, names)
	if changed {
		c.types[follow].names = names
	}
	// Secrets follow both: clusters and listeners name the validation
	// contexts they verify peers with (secrets.go).
	secretsChanged := false
	if t == resource.ClusterType || t == resource.ListenerType {
		if sds := sdsNames(candidate); !slices.Equal(c.types[resource.SecretType].names, sds) {
			c.types[resource.SecretType].names = sds
			secretsChanged = true
		}
	}
	c.synced = c.allReceived()
	c.mu.Unlock()
	c.opts.Log.Debug("xDS update applied (ACK)", "type", shortType(t), "version", resp.GetVersionInfo(), "resources", len(resp.GetResources()))
	c.opts.OnEvent(Event{Kind: "ack", TypeURL: t, Version: resp.GetVersionInfo()})
	if err := c.send(s, t, nil); err != nil {
		return err
	}
	if changed {
		if err := c.send(s, follow, nil); err != nil {
			return err
		}
	}
	if secretsChanged {
		return c.send(s, resource.SecretType, nil)
	}
	return nil
}

// allReceived: every type with something subscribed has been applied once.
// Called with c.mu held.
func (c *Client) allReceived() bool {
	for t, ts := range c.types {
		if !ts.got && (c.wildcard(t) || len(ts.names) > 0) {
			return false
		}
	}
	return true
}

// wildcard reports whether a type is subscribed to as a whole (listeners,
// clusters) rather than by name.
func (c *Client) wildcard(typeURL string) bool {
	return typeURL == resource.ClusterType || typeURL == resource.ListenerType
}

func (c *Client) namesEmpty(typeURL string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.types[typeURL].names) == 0
}

func shortType(typeURL string) string {
	switch typeURL {
	case resource.ClusterType:
		return "CDS"
	case resource.EndpointType:
		return "EDS"
	case resource.ListenerType:
		return "LDS"
	case resource.RouteType:
		return "RDS"
	case resource.SecretType:
		return "SDS"
	}
	return typeURL
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var errNilResource = errors.New("resource is empty")
