package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/identity"
	"github.com/weftmesh/weft/controlplane/registry"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/token"
	"github.com/weftmesh/weft/controlplane/translate"
)

// TestProxyNACKsWhatItCannotHonour: a real `weft proxy` served by an xDS
// server other than Weft's translator (go-control-plane with a hand-made
// snapshot, as a third-party control plane would send) rejects a listener
// with an HTTP filter it does not implement: it NACKs naming the field, keeps
// serving its last good config, and ACKs the next good one.
func TestProxyNACKsWhatItCannotHonour(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	authority, err := ca.Load(ctx, st.Client(), ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := token.NewIssuer(ctx, st.Client())
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	os.WriteFile(caFile, authority.TrustBundlePEM(), 0o644)

	// The xDS server: Identity and Registry as Weft's, ADS from a plain snapshot cache.
	cpIP := nextIP()
	serving, err := authority.ServingCertificate([]string{cpIP}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serving}, ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs: authority.TrustBundlePool(), MinVersion: tls.VersionTLS13,
	})))
	meshv1.RegisterIdentityServer(g, identity.New(identity.Options{CA: authority, Tokens: tokens, TTL: func() time.Duration { return time.Hour }}))
	meshv1.RegisterRegistryServer(g, registry.New(registry.Options{Store: st, TrustDomain: authority.TrustDomain()}))
	requests := make(chan *discoveryv3.DiscoveryRequest, 100)
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	ads := serverv3.NewServer(ctx, cache, serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			if r.GetTypeUrl() == resource.ListenerType {
				requests <- proto.Clone(r).(*discoveryv3.DiscoveryRequest)
			}
			return nil
		},
	})
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, ads)
	ln, err := net.Listen("tcp", cpIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	t.Cleanup(g.Stop)

	// The proxy's config: what Weft's translator makes for it, as version v1.
	ip := nextIP()
	app := startBackend(t, ip, "shop", nil)
	inbound, admin := freeAddr(t, ip), freeAddr(t, ip)
	node := xdsmeta.Node{ID: xdsmeta.WorkloadID("shop", "default", inbound), Service: "shop", Namespace: "default",
		Inbound: inbound, App: app.addr, Admin: admin}
	in := &translate.Input{TrustDomain: authority.TrustDomain(), TrustBundlePEM: authority.TrustBundlePEM()}
	in.Mesh.Default()
	good, err := translate.ForNode(in, node)
	if err != nil {
		t.Fatal(err)
	}
	setSnapshot(t, cache, node.ID, "v1", good.ByType())

	tok, _, err := tokens.Create(ctx, "shop", "default", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "shop-proxy", "proxy", "--service", "shop", "--control", ln.Addr().String(), "--token", tok,
		"--ca-file", caFile, "--app", app.addr, "--inbound", inbound, "--admin", admin)
	s := &sidecar{proc: p, service: "shop", ip: ip, inbound: inbound, admin: admin}
	s.waitReady(t)
	client := meshCert(t, authority, "frontend")
	if code, err := mtlsGet(inbound, client); err != nil || code != 200 {
		t.Fatalf("v1: %d %v", code, err)
	}

	// v2: the same, plus a Lua filter on the inbound listener.
	bad := withLuaFilter(t, good.ByType())
	setSnapshot(t, cache, node.ID, "v2", bad)
	nack := waitListenerRequest(t, requests, func(r *discoveryv3.DiscoveryRequest) bool { return r.GetErrorDetail() != nil })
	msg := nack.GetErrorDetail().GetMessage()
	for _, want := range []string{`listener "inbound"`, "http_filters[0]", "envoy.filters.http.lua", "not supported"} {
		if !strings.Contains(msg, want) {
			t.Errorf("NACK message lacks %q: %s", want, msg)
		}
	}
	if nack.GetVersionInfo() != "v1" {
		t.Errorf("NACK names version %q as the one in force, want v1", nack.GetVersionInfo())
	}
	// Nothing of v2 applied: the listener still serves, with v1's config.
	if code, err := mtlsGet(inbound, client); err != nil || code != 200 {
		t.Fatalf("after the NACK: %d %v", code, err)
	}
	// By its names: a bare "lua" also turns up, now and then, in the
	// base64 of the test CA's certificates that the dump carries.
	if dump := s.adminGet(t, "/config_dump"); strings.Contains(dump, "envoy.filters.http.lua") || strings.Contains(dump, "envoy.extensions.filters.http.lua") {
		t.Fatal("the rejected Lua filter shows in /config_dump")
	}
	if m := s.adminGet(t, "/metrics"); !strings.Contains(m, "weft_proxy_xds_rejected_total") {
		t.Error("/metrics does not count the rejection")
	}

	// v3: good again, and acknowledged.
	setSnapshot(t, cache, node.ID, "v3", good.ByType())
	waitListenerRequest(t, requests, func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetErrorDetail() == nil && r.GetVersionInfo() == "v3"
	})
}

func setSnapshot(t *testing.T, cache cachev3.SnapshotCache, node, version string, res map[resource.Type][]types.Resource) {
	t.Helper()
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
}

func waitListenerRequest(t *testing.T, ch <-chan *discoveryv3.DiscoveryRequest, match func(*discoveryv3.DiscoveryRequest) bool) *discoveryv3.DiscoveryRequest {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case r := <-ch:
			if match(r) {
				return r
			}
		case <-timeout:
			t.Fatal("the expected listener request (ACK or NACK) never came")
			return nil
		}
	}
}

// withLuaFilter copies res with a Lua HTTP filter in front of the router on every HCM.
func withLuaFilter(t *testing.T, res map[resource.Type][]types.Resource) map[resource.Type][]types.Resource {
	t.Helper()
	out := map[resource.Type][]types.Resource{}
	for k, v := range res {
		out[k] = v
	}
	lua, _ := anypb.New(&luav3.Lua{DefaultSourceCode: nil})
	var listeners []types.Resource
	for _, r := range res[resource.ListenerType] {
		l := proto.Clone(r).(*listenerv3.Listener)
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				m := &hcm.HttpConnectionManager{}
				if f.GetTypedConfig().UnmarshalTo(m) != nil {
					continue
				}
				m.HttpFilters = append([]*hcm.HttpFilter{{Name: "envoy.filters.http.lua", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: lua}}}, m.HttpFilters...)
				f.ConfigType.(*listenerv3.Filter_TypedConfig).TypedConfig, _ = anypb.New(m)
			}
		}
		listeners = append(listeners, l)
	}
	out[resource.ListenerType] = listeners
	return out
}

// meshCert gets a certificate for service from the mesh CA, as a proxy would.
func meshCert(t *testing.T, authority *ca.CA, service string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	chain, err := authority.SignCSR(csr, spiffe.ID{TrustDomain: authority.TrustDomain(), Namespace: "default", Service: service}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key}
}
