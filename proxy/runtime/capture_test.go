package runtime

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsmeta"
)

// captureResources is the translator's transparent-mode outbound shape: a
// capture listener with one chain for svcWeb's VIP 240.240.0.1:80 (routed to
// the app through a static cluster) and a passthrough default chain.
func captureResources(t *testing.T, app string) *Resources {
	r := emptyResources()
	static := inboundCluster(t, svcWeb, app)
	r.Clusters[static.Name] = static
	rc := outboundRoute(svcWeb)
	rc.VirtualHosts[0].Routes[0] = routeToCluster(static.Name)
	r.Routes[rc.Name] = rc
	r.Clusters[xdsmeta.PassthroughCluster] = &clusterv3.Cluster{
		Name:                 xdsmeta.PassthroughCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(time.Second),
	}
	l := &listenerv3.Listener{
		Name:             xdsmeta.OutboundCaptureListener,
		Address:          socketAddr(t, clientIP+":0"),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		UseOriginalDst:   wrapperspb.Bool(true),
		FilterChains: []*listenerv3.FilterChain{{
			Name: "web",
			FilterChainMatch: &listenerv3.FilterChainMatch{
				PrefixRanges:    []*corev3.CidrRange{{AddressPrefix: "240.240.0.1", PrefixLen: wrapperspb.UInt32(32)}},
				DestinationPort: wrapperspb.UInt32(80),
			},
			Filters: []*listenerv3.Filter{hcmFilter(t, &hcmv3.HttpConnectionManager{
				StatPrefix: "web",
				RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
					ConfigSource: ads(), RouteConfigName: rc.Name,
				}},
				HttpFilters: []*hcmv3.HttpFilter{routerFilter(t)},
			})},
		}},
		DefaultFilterChain: &listenerv3.FilterChain{
			Name:    xdsmeta.PassthroughCluster,
			Filters: []*listenerv3.Filter{tcpFilter(t, "passthrough", xdsmeta.PassthroughCluster)},
		},
	}
	r.Listeners[l.Name] = l
	return r
}

func TestCaptureListenerApplies(t *testing.T) {
	app := startWebApp(t)
	rt := New(Options{})
	defer rt.Close()
	if err := rt.Apply(captureResources(t, app.addr)); err != nil {
		t.Fatal(err)
	}
	// A connection that was not redirected has no original destination: it
	// is the capture port's own address, which no chain matches, and the
	// passthrough must not connect the listener to itself.
	c, err := net.DialTimeout("tcp", rt.ListenerAddr(xdsmeta.OutboundCaptureListener).String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Closed with the request unread: EOF, or a reset.
	if n, err := c.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("an unredirected connection got %d bytes, err %v; want it closed", n, err)
	}
}

func TestCaptureValidation(t *testing.T) {
	app := startWebApp(t)
	tests := []struct {
		name string
		edit func(r *Resources)
		want string
	}{{
		name: "original_dst cluster with a balancer",
		edit: func(r *Resources) { r.Clusters[xdsmeta.PassthroughCluster].LbPolicy = clusterv3.Cluster_ROUND_ROBIN },
		want: `cluster "PassthroughCluster": lb_policy`,
	}, {
		name: "original_dst cluster with endpoints",
		edit: func(r *Resources) {
			r.Clusters[xdsmeta.PassthroughCluster].LoadAssignment = loadAssignment(t, xdsmeta.PassthroughCluster, "127.0.0.1:1")
		},
		want: `cluster "PassthroughCluster": load_assignment`,
	}, {
		name: "passthrough without use_original_dst",
		edit: func(r *Resources) { r.Listeners[xdsmeta.OutboundCaptureListener].UseOriginalDst = nil },
		want: `default_filter_chain`,
	}, {
		name: "default chain with a match",
		edit: func(r *Resources) {
			r.Listeners[xdsmeta.OutboundCaptureListener].DefaultFilterChain.FilterChainMatch = &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(1)}
		},
		want: `default_filter_chain.filter_chain_match`,
	}, {
		name: "only a default chain",
		edit: func(r *Resources) { r.Listeners[xdsmeta.OutboundCaptureListener].FilterChains = nil },
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := New(Options{})
			defer rt.Close()
			r := captureResources(t, app.addr)
			tc.edit(r)
			err := rt.Apply(r)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want it to name %s", err, tc.want)
			}
		})
	}
}
