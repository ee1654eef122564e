package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/proxy/tlsx"
)

// svidModes are the ways the issuance rate is measured.
var svidModes = []struct{ key, what string }{
	{"token", "join token, clients share 8 connections"},
	{"svid", "SVID (rotation), clients share 8 connections"},
	{"fresh", "join token, a new TLS connection per CSR (as proxy/identity does)"},
}

// runSVID measures how many CSRs per second the Identity service of a fresh
// control plane signs for concurrent clients.
func runSVID(ctx context.Context, cfg *config, bin, label string, log func(string, ...any)) (metrics, error) {
	out := metrics{}
	dir, err := os.MkdirTemp(cfg.workDir, "svid-"+label+"-")
	if err != nil {
		return nil, err
	}
	cp, err := startControlPlane(ctx, bin, dir)
	if err != nil {
		return nil, err
	}
	defer cp.stop()
	const svc, ns = "svid-bench", "bench"
	tok, err := cp.api.CreateToken(ctx, svc, ns, 24*time.Hour)
	if err != nil {
		return nil, err
	}

	// Keys and CSRs are made before the clock starts: the rate is the
	// control plane's, not the key generation of the clients.
	const pool = 256
	csrs := make([][]byte, pool)
	keys := make([]*ecdsa.PrivateKey, pool)
	for i := range csrs {
		keys[i], _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csrs[i], _ = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, keys[i])
	}
	tokenCtx := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.Token)
	}
	dial := func(cert *tls.Certificate) (*grpc.ClientConn, error) {
		creds := credentials.NewTLS(tlsx.ControlPlaneClient(cp.roots, func() *tls.Certificate { return cert }))
		return grpc.NewClient(cp.grpcAddr, grpc.WithTransportCredentials(creds))
	}
	sign := func(ctx context.Context, conn *grpc.ClientConn, i int) (*meshv1.SignResponse, error) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return meshv1.NewIdentityClient(conn).Sign(cctx, &meshv1.SignRequest{CsrDer: csrs[i%pool], Service: svc, Namespace: ns})
	}

	// One SVID, to authenticate the rotation mode.
	c0, err := dial(nil)
	if err != nil {
		return nil, err
	}
	resp, err := sign(tokenCtx(ctx), c0, 0)
	c0.Close()
	if err != nil {
		return nil, fmt.Errorf("first SVID: %w", err)
	}
	svid := &tls.Certificate{Certificate: resp.GetCertChainDer(), PrivateKey: keys[0]}

	for _, mode := range svidModes {
		const nConns = 8
		var conns []*grpc.ClientConn
		if mode.key != "fresh" {
			var cert *tls.Certificate
			if mode.key == "svid" {
				cert = svid
			}
			for range nConns {
				c, err := dial(cert)
				if err != nil {
					return nil, err
				}
				conns = append(conns, c)
			}
		}
		call := func(ctx context.Context, w, i int) error {
			if mode.key == "svid" {
				_, err := sign(ctx, conns[w%nConns], i)
				return err
			}
			ctx = tokenCtx(ctx)
			if mode.key == "token" {
				_, err := sign(ctx, conns[w%nConns], i)
				return err
			}
			c, err := dial(nil)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = sign(ctx, c, i)
			return err
		}
		var (
			counting atomic.Bool
			okN      atomic.Int64
			errN     atomic.Int64
			firstErr atomic.Value
			wg       sync.WaitGroup
		)
		rctx, stop := context.WithCancel(ctx)
		for w := range cfg.svidClients {
			wg.Go(func() {
				for i := w; rctx.Err() == nil; i += cfg.svidClients {
					err := call(rctx, w, i)
					if !counting.Load() || rctx.Err() != nil {
						continue
					}
					if err != nil {
						errN.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					} else {
						okN.Add(1)
					}
				}
			})
		}
		time.Sleep(cfg.svidWarmup)
		profDone := make(chan struct{})
		if cfg.profileDir != "" && cfg.svidFor >= 2*time.Second {
			path := filepath.Join(cfg.profileDir, fmt.Sprintf("cpu-svid-%s-%s.pprof", mode.key, label))
			go func() {
				defer close(profDone)
				if err := cp.cpuProfile(ctx, cfg.svidFor-time.Second, path); err != nil {
					log("  CPU profile: %v", err)
				}
			}()
		} else {
			close(profDone)
		}
		a, _ := readProcStats(cp.pid())
		self0, _ := readProcStats(os.Getpid())
		start := time.Now()
		counting.Store(true)
		time.Sleep(cfg.svidFor)
		counting.Store(false)
		elapsed := time.Since(start)
		b, _ := readProcStats(cp.pid())
		self1, _ := readProcStats(os.Getpid())
		stop()
		wg.Wait()
		<-profDone
		for _, c := range conns {
			c.Close()
		}
		rate := float64(okN.Load()) / elapsed.Seconds()
		out["svid."+mode.key] = rate
		out["svid."+mode.key+".cpu"] = cpuBetween(a, b)
		out["svid."+mode.key+".bench_cpu"] = cpuBetween(self0, self1)
		out["svid."+mode.key+".errors"] = float64(errN.Load())
		msg := ""
		if e := firstErr.Load(); e != nil {
			msg = fmt.Sprintf(" (first error: %v)", e)
		}
		log("  SVID %-5s %6.0f CSR/s with %d clients, %d errors%s; control plane CPU %.2f cores, bench CPU %.2f cores [%s]",
			mode.key, rate, cfg.svidClients, errN.Load(), msg, cpuBetween(a, b), cpuBetween(self0, self1), mode.what)
	}
	return out, nil
}
