// Package proxy is the sidecar: `weft proxy` and `weft-proxy` both call Run.
// It joins the mesh (identity), registers its workload, follows its xDS
// config and serves traffic until it is told to stop, then drains.
package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/admin"
	"github.com/weftmesh/weft/proxy/identity"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/registration"
	"github.com/weftmesh/weft/proxy/runtime"
	"github.com/weftmesh/weft/proxy/tlsx"
	"github.com/weftmesh/weft/proxy/xdsclient"
)

// Run runs the proxy until ctx is done, then drains and returns.
func Run(ctx context.Context, o Options) error {
	o.Default()
	if err := o.Validate(); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	log := o.Log.With("service", o.Service, "namespace", o.Namespace)
	roots, err := loadRoots(o.CAFile)
	if err != nil {
		return err
	}
	p := &proxyState{opts: o, drainCh: make(chan struct{})}
	tlsConf := tlsx.ControlPlaneClient(roots, func() *tls.Certificate { return p.id.Certificate() })
	creds := credentials.NewTLS(tlsConf)
	dial := func(context.Context) (*grpc.ClientConn, error) {
		return grpc.NewClient(o.Control, grpc.WithTransportCredentials(creds))
	}
	p.id, err = identity.New(identity.Options{
		Service: o.Service, Namespace: o.Namespace, Dial: dial, Log: log,
		Token:      func() (string, error) { return readToken(o) },
		WorkloadID: o.workloadID(),
	})
	if err != nil {
		return err
	}
	if err := join(ctx, p.id, log, o.Control); err != nil {
		return err
	}

	conn, err := grpc.NewClient(o.Control, grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}))
	if err != nil {
		return fmt.Errorf("proxy: control plane %s: %w", o.Control, err)
	}
	defer conn.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg, p.id)
	self := observe.Peer{Service: o.Service, Namespace: o.Namespace, Version: o.Version}
	if svid := p.id.Current(); svid != nil && len(svid.Leaf.URIs) > 0 {
		self.ID = svid.Leaf.URIs[0].String()
	}
	p.rt = runtime.New(runtime.Options{Identity: p.id, Log: log, Metrics: reg, ControlPlane: conn, Workload: self})
	defer p.rt.Close()

	node := xdsmeta.Node{
		ID: o.workloadID(), Service: o.Service, Namespace: o.Namespace,
		Version: o.Version, Inbound: o.Inbound, App: o.App, Admin: o.Admin, HTTPProxy: o.HTTPProxy, Upstreams: o.Upstreams,
		Mode: o.Mode, ListenIP: o.ListenIP,
	}
	onEvent := func(e xdsclient.Event) {
		m.xdsEvent(e)
		if e.Kind == "ack" && e.TypeURL == resource.SecretType {
			// A new root in front of the bundle makes the SVID re-issue.
			if b := p.rt.TrustBundle(xdsmeta.SecretRootCA); b != nil {
				p.id.TrustBundleChanged(b.Roots())
			}
		}
	}
	p.xds = xdsclient.New(xdsclient.Options{Node: node.ToProto(), Conn: conn, Runtime: p.rt, Log: log, OnEvent: onEvent})
	labels := map[string]string{}
	if o.Version != "" {
		labels["version"] = o.Version
	}
	// A gateway is no destination: it has no inbound address to register.
	if o.Mode != xdsmeta.ModeIngress {
		p.reg = registration.New(conn, &meshv1.Workload{
			Id: node.ID, Service: o.Service, Namespace: o.Namespace, Version: o.Version, Labels: labels,
			Address: o.Inbound, AppAddress: o.App, AdminAddress: o.Admin,
		}, log)
	}

	adminLn, err := net.Listen("tcp", o.Admin)
	if err != nil {
		return fmt.Errorf("proxy: admin listener: %w", err)
	}
	adminSrv := admin.NewServer(o.Admin, admin.Handler(p, reg, log))
	adminSrv.RegisterOnShutdown(p.rt.Tap().Close) // end live taps, or Shutdown would wait on them

	// Every goroutine below is owned here: bg is cancelled and waited for before Run returns.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() { stopBG(); wg.Wait() }()
	goOwned := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	goOwned(func() { _ = adminSrv.Serve(adminLn) })
	goOwned(func() { _ = p.id.Run(bg) })
	goOwned(func() { _ = p.xds.Run(bg) })
	regCtx, stopReg := context.WithCancel(bg)
	if p.reg != nil {
		goOwned(func() { _ = p.reg.Run(regCtx) })
	}
	goOwned(func() { p.markReadyWhenSynced(bg, log) })
	if o.DNS != "" {
		resolver, err := listenDNS(o, p.rt, reg, log)
		if err != nil {
			stopReg()
			return err
		}
		defer resolver.Close() // deferred after the wait for bg, so it runs first
		goOwned(resolver.Serve)
	}
	log.Info("proxy started", "inbound", o.Inbound, "admin", o.Admin, "app", o.App, "upstreams", len(o.Upstreams), "control", o.Control)

	select {
	case <-ctx.Done():
	case <-p.drainCh:
	}
	// Drain: leave the endpoint set first, give peers a moment to stop
	// sending, finish what is in flight, then deregister for good.
	log.Info("draining", "delay", o.DrainDelay, "timeout", o.DrainTimeout)
	p.draining.Store(true)
	if p.reg != nil {
		p.reg.SetReady(false)
	}
	time.Sleep(o.DrainDelay)
	dctx, cancel := context.WithTimeout(context.Background(), o.DrainTimeout)
	defer cancel()
	if err := p.rt.Drain(dctx); err != nil {
		log.Warn("drain did not finish cleanly", "err", err)
	}
	stopReg()
	_ = adminSrv.Shutdown(dctx)
	log.Info("proxy stopped")
	return nil
}

// join gets the first SVID, retrying while the control plane is unreachable
// but failing at once when it refuses the token.
func join(ctx context.Context, id *identity.Source, log interface{ Info(string, ...any) }, control string) error {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := id.Join(ctx)
		if err == nil {
			return nil
		}
		switch status.Code(err) {
		case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument:
			return fmt.Errorf("proxy: the control plane refused to issue an identity: %w", err)
		}
		log.Info("waiting for the control plane", "addr", control, "attempt", attempt, "err", err.Error())
		select {
		case <-ctx.Done():
			return fmt.Errorf("proxy: stopped before joining the mesh: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func readToken(o Options) (string, error) {
	if o.Token != "" {
		return o.Token, nil
	}
	b, err := os.ReadFile(o.TokenFile)
	if err != nil {
		return "", fmt.Errorf("read --token-file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("--token-file %s is empty", o.TokenFile)
	}
	return t, nil
}

func loadRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("proxy: read --ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("proxy: --ca-file %s holds no PEM certificate", path)
	}
	return pool, nil
}
