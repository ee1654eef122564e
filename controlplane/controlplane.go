// Package controlplane is `weft control`: it opens the store, loads the mesh
// CA, and serves ADS, Identity, Registry and the global rate limit service
// on the gRPC port, the CLI's API on the API port, and its own metrics on
// the dashboard port. Every replica is the same: they share nothing but
// etcd (and so they do not share global rate limit counts).
package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/audit"
	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/dashboard"
	"github.com/weftmesh/weft/controlplane/identity"
	"github.com/weftmesh/weft/controlplane/meshstate"
	"github.com/weftmesh/weft/controlplane/ratelimit"
	"github.com/weftmesh/weft/controlplane/registry"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/telemetry"
	"github.com/weftmesh/weft/controlplane/token"
	"github.com/weftmesh/weft/controlplane/translate"
	"github.com/weftmesh/weft/controlplane/vip"
	"github.com/weftmesh/weft/controlplane/xds"
)

// servingCertTTL is the lifetime of the control plane's own certificate; it
// is re-issued at half-life by the process holding it.
const servingCertTTL = 30 * 24 * time.Hour

// Run serves until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	cfg.Default()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	log := cfg.Log
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("control: data dir: %w", err)
	}
	// Bind every port first: a port in use is reported before anything is created.
	lns, err := listenAll(cfg.GRPCAddr, cfg.APIAddr, cfg.DashboardAddr)
	if err != nil {
		return err
	}
	defer closeAll(lns)

	if len(cfg.EtcdEndpoints) == 0 {
		log.Info("opening the embedded store", "dir", cfg.DataDir)
	} else {
		log.Info("connecting to external etcd", "endpoints", cfg.EtcdEndpoints)
	}
	st, err := store.Open(ctx, store.Config{Endpoints: cfg.EtcdEndpoints, DataDir: cfg.DataDir, Log: log, Fast: cfg.FastStore})
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	defer st.Close()

	var external *ca.External
	if cfg.CACert != "" {
		if external, err = ca.LoadExternal(ca.ExternalFiles{Cert: cfg.CACert, Key: cfg.CAKey, Bundle: cfg.CABundle}, time.Now()); err != nil {
			return fmt.Errorf("control: %w", err)
		}
	}
	// The CA's changes (a root rotation's phases) reach proxies as a new
	// ROOTCA, and new proxies through ca.crt.
	var (
		state     *meshstate.Watcher
		authority *ca.CA
	)
	authority, err = ca.Load(ctx, st.Client(), ca.Options{TrustDomain: cfg.TrustDomain, Log: log, External: external,
		OnChange: func() {
			state.Notify()
			if err := writeFile(cfg.CAFilePath(), authority.TrustBundlePEM(), 0o644); err != nil {
				log.Warn("cannot rewrite the trust bundle file", "err", err)
			}
		}})
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	tokens, err := token.NewIssuer(ctx, st.Client())
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if err := writeFile(cfg.CAFilePath(), authority.TrustBundlePEM(), 0o644); err != nil {
		return err
	}
	if err := ensureClientConfig(ctx, cfg, tokens, authority); err != nil {
		return err
	}
	log.Info("mesh CA ready", "trustDomain", authority.TrustDomain(), "caFile", cfg.CAFilePath(), "clientConfig", cfg.ClientConfigPath())

	serving, err := newServingCert(authority, hostsFor(cfg.GRPCAddr, cfg.APIAddr))
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var mesh atomic.Pointer[translate.Input]
	xdsServer := xds.New(xds.Options{Log: log, Metrics: reg})
	certTTL := func() time.Duration {
		if in := mesh.Load(); in != nil && in.Mesh.CertificateTTL.Duration > 0 {
			return in.Mesh.CertificateTTL.Duration
		}
		return 24 * time.Hour
	}
	idService := identity.New(identity.Options{CA: authority, Tokens: tokens, TTL: certTTL, Log: log, Metrics: reg})
	regService := registry.New(registry.Options{Store: st, TrustDomain: authority.TrustDomain(), Log: log, Metrics: reg})
	rlService := ratelimit.New(ratelimit.Options{TrustDomain: authority.TrustDomain(), Log: log, Metrics: reg})

	grpcServer := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(grpcTLS(serving, authority))),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// Thousands of mostly idle streams: no per-connection read buffer,
		// and write buffers returned to a pool after each flush
		// (518 -> 417 MB RSS at 2000 simulated proxies, bench/controlplane).
		grpc.ReadBufferSize(0),
		grpc.SharedWriteBuffer(true),
	)
	meshv1.RegisterIdentityServer(grpcServer, idService)
	meshv1.RegisterRegistryServer(grpcServer, regService)
	xdsServer.Register(grpcServer)
	rlService.Register(grpcServer)

	state = meshstate.New(st, meshstate.Options{
		TrustDomain: authority.TrustDomain(), TrustBundlePEM: authority.TrustBundlePEM, Log: log,
		OnChange: func(in *translate.Input) { mesh.Store(in); xdsServer.Update(in); rlService.Update(in) },
	})
	// Gives every Service its virtual IP for transparent mode.
	var vipRange netip.Prefix
	if cfg.VIPRange != "" {
		vipRange = netip.MustParsePrefix(cfg.VIPRange) // checked by Validate
	}
	vips, err := vip.New(st.Client(), vip.Options{Range: vipRange, Log: log})
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	// Scrapes every registered proxy's /metrics and fans in their taps.
	served := servedWorkloads{mesh: &mesh}
	stats := telemetry.New(telemetry.Options{Workloads: served, Log: log, Interval: cfg.ScrapeInterval})
	apiHandler := apiserver.New(apiserver.Options{
		Store: st, Workloads: st, Tokens: tokens, Auth: tokens, RouteStatus: xdsServer, PolicyStatus: xdsServer, Inputs: xdsServer,
		Telemetry:   stats,
		Audit:       audit.New(st.Client(), audit.Options{Log: log}),
		TrustDomain: authority.TrustDomain(), Version: cfg.Version, Log: log, CA: authority,
	})
	apiServer := &http.Server{
		Handler:           apiMetrics(reg, apiHandler),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: serving.get},
		ReadHeaderTimeout: 10 * time.Second,
	}
	dash := dashboard.New(dashboard.Options{
		Resources: st, Workloads: st, Stats: stats, Tap: dashboardTap(stats), CA: authority,
		Statuses: apiserver.NewStatuses(apiserver.Options{Store: st, RouteStatus: xdsServer, PolicyStatus: xdsServer, TrustDomain: authority.TrustDomain(), Log: log}),
		Version:  cfg.Version, Log: log,
	})
	dashServer := &http.Server{Handler: withPrometheusSD(dashboardHandler(reg, xdsServer, dash), served), ReadHeaderTimeout: 10 * time.Second}
	dashServer.RegisterOnShutdown(dash.Close)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	goOwned := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) && ctx.Err() == nil {
				errc <- fmt.Errorf("control: %s: %w", name, err)
			}
		}()
	}
	goOwned("xds", func() error { return xdsServer.Run(ctx) })
	goOwned("state", func() error { return state.Run(ctx) })
	goOwned("vip", func() error { return vips.Run(ctx) })
	goOwned("ca", func() error { return authority.Run(ctx) })
	goOwned("telemetry", func() error { return stats.Run(ctx) })
	goOwned("grpc", func() error { return grpcServer.Serve(lns[0]) })
	goOwned("api", func() error { return apiServer.ServeTLS(lns[1], "", "") })
	goOwned("dashboard", func() error { return dashServer.Serve(lns[2]) })
	log.Info("control plane serving", "grpc", lns[0].Addr().String(), "api", "https://"+lns[1].Addr().String(), "dashboard", "http://"+lns[2].Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("control plane stopping")
	cancel()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	_ = apiServer.Shutdown(shutdownCtx)
	_ = dashServer.Shutdown(shutdownCtx)
	// Endpoints stay through a restart: proxies re-register with whichever
	// replica they reach next, and this replica's lease, no longer kept
	// alive, expires harmlessly.
	regService.HandOver()
	stopGRPC(grpcServer, 2*time.Second)
	wg.Wait()
	return runErr
}

// stopGRPC stops gracefully, but does not wait forever on streams (ADS and
// Registry streams never end by themselves).
func stopGRPC(s *grpc.Server, grace time.Duration) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.Stop()
		<-done
	}
}

func listenAll(addrs ...string) ([]net.Listener, error) {
	var lns []net.Listener
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("control: listen on %s: %w", a, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// grpcTLS verifies a client certificate when one is presented (proxies that
// have joined) but does not require one (a proxy joining with its token).
func grpcTLS(serving *servingCert, authority *ca.CA) *tls.Config {
	// The bundle is read per handshake, so a new root takes effect at once;
	// the config is made once per bundle and shared by the connections.
	type clientCAConfig struct {
		pool *x509.CertPool
		cfg  *tls.Config
	}
	var last atomic.Pointer[clientCAConfig]
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: serving.get,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			pool := authority.TrustBundlePool()
			if c := last.Load(); c != nil && c.pool == pool {
				return c.cfg, nil
			}
			cfg := &tls.Config{
				MinVersion:     tls.VersionTLS13,
				GetCertificate: serving.get,
				ClientAuth:     tls.VerifyClientCertIfGiven,
				ClientCAs:      pool,
				NextProtos:     []string{"h2"},
			}
			last.Store(&clientCAConfig{pool: pool, cfg: cfg})
			return cfg, nil
		},
	}
}

// ensureClientConfig writes the CLI's config (server, CA, a new admin
// credential) unless this data dir already has one.
func ensureClientConfig(ctx context.Context, cfg Config, tokens *token.Issuer, authority *ca.CA) error {
	path := cfg.ClientConfigPath()
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	secret, err := tokens.CreateAdmin(ctx, "admin")
	if err != nil {
		return fmt.Errorf("control: create admin credential: %w", err)
	}
	c := client.Config{
		Server:     "https://" + dialable(cfg.APIAddr),
		GRPCServer: dialable(cfg.GRPCAddr),
		CACert:     string(authority.TrustBundlePEM()),
		Token:      secret,
	}
	if err := client.WriteConfig(path, c); err != nil {
		return fmt.Errorf("control: write client config: %w", err)
	}
	return nil
}

// dialable turns a listen address into one a client on this host can dial.
func dialable(addr string) string {
	h, p, err := net.SplitHostPort(addr)
	if err != nil || (h != "" && h != "0.0.0.0" && h != "::") {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", p)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("control: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("control: write %s: %w", path, err)
	}
	return nil
}
