// Package agent gives a proxyless gRPC workload what `weft proxy` gives a
// sidecar'd one: an SVID from the control plane's Identity service, kept
// fresh at half its lifetime, written as files for grpc-go's file_watcher
// certificate provider; and, for a server, the workload's registration, so
// it appears in the endpoints of its service.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/identity"
	"github.com/weftmesh/weft/proxy/registration"
	"github.com/weftmesh/weft/proxy/tlsx"
)

// The files the agent writes in Options.OutDir, as the gRPC bootstrap names them.
const (
	// CertFile holds the SVID and its chain, PEM.
	CertFile = "cert.pem"
	// KeyFile holds the SVID's private key, PKCS #8 PEM, mode 0600.
	KeyFile = "key.pem"
	// BundleFile holds the trust bundle, PEM: the roots the mesh trusts.
	BundleFile = "bundle.pem"
)

// Options configure the agent.
type Options struct {
	Service, Namespace string
	// Version is the workload's version label, for subsets (with Serve).
	Version string
	// Control is the control plane's gRPC address.
	Control string
	// CAFile holds the mesh root(s), PEM: it authenticates the control plane.
	CAFile string
	// TokenFile holds the join token, read each time it is needed.
	TokenFile string
	// OutDir receives CertFile, KeyFile and BundleFile.
	OutDir string
	// Serve, if set, is the address the workload's gRPC server listens on:
	// the agent registers it, ready while it accepts TCP connections.
	Serve string
	// ProbeEvery is how often Serve is probed. Default 1s.
	ProbeEvery time.Duration
	Log        *slog.Logger
}

// Validate says which required option is missing or malformed.
func (o *Options) Validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"service", o.Service}, {"namespace", o.Namespace}, {"control", o.Control},
		{"ca-file", o.CAFile}, {"token-file", o.TokenFile}, {"out", o.OutDir},
	} {
		if f.v == "" {
			missing = append(missing, "--"+f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	if o.Serve != "" {
		if _, _, err := net.SplitHostPort(o.Serve); err != nil {
			return fmt.Errorf("--serve %q: %w", o.Serve, err)
		}
	}
	return nil
}

// Run joins the mesh, writes the SVID files, then keeps them fresh (and
// the workload registered) until ctx is done.
func Run(ctx context.Context, o Options) error {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ProbeEvery <= 0 {
		o.ProbeEvery = time.Second
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	pemRoots, err := os.ReadFile(o.CAFile)
	if err != nil {
		return fmt.Errorf("agent: read --ca-file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemRoots) {
		return fmt.Errorf("agent: --ca-file %s holds no PEM certificate", o.CAFile)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	log := o.Log.With("service", o.Service, "namespace", o.Namespace)

	var id *identity.Source
	creds := credentials.NewTLS(tlsx.ControlPlaneClient(roots, func() *tls.Certificate { return id.Certificate() }))
	dial := func(context.Context) (*grpc.ClientConn, error) {
		return grpc.NewClient(o.Control, grpc.WithTransportCredentials(creds))
	}
	files := &svidFiles{dir: o.OutDir}
	var workloadID string
	if o.Serve != "" {
		workloadID = xdsmeta.WorkloadID(o.Service, o.Namespace, o.Serve)
	}
	id, err = identity.New(identity.Options{
		Service: o.Service, Namespace: o.Namespace, Dial: dial, Log: log, WorkloadID: workloadID,
		Token: func() (string, error) { return readToken(o.TokenFile) },
		OnRotate: func(svid *identity.SVID) {
			if err := files.write(svid); err != nil {
				log.Error("agent: write SVID files", "err", err)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := join(ctx, id, log); err != nil {
		return err
	}
	if err := files.err(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	log.Info("agent: SVID files written", "dir", o.OutDir)

	// Every goroutine below is owned here: Run waits for them before it returns.
	var wg sync.WaitGroup
	wg.Go(func() { _ = id.Run(ctx) })
	if o.Serve != "" {
		conn, err := dial(ctx)
		if err != nil {
			return fmt.Errorf("agent: control plane %s: %w", o.Control, err)
		}
		defer conn.Close()
		labels := map[string]string{}
		if o.Version != "" {
			labels["version"] = o.Version
		}
		reg := registration.New(conn, &meshv1.Workload{
			Id: workloadID, Service: o.Service, Namespace: o.Namespace, Version: o.Version,
			Labels: labels, Address: o.Serve,
		}, log)
		wg.Go(func() { _ = reg.Run(ctx) })
		wg.Go(func() { probe(ctx, o.Serve, o.ProbeEvery, reg.SetReady) })
	}
	wg.Wait()
	return nil
}

// join gets the first SVID, retrying while the control plane is away.
func join(ctx context.Context, id *identity.Source, log *slog.Logger) error {
	backoff := 200 * time.Millisecond
	for {
		err := id.Join(ctx)
		if err == nil {
			return nil
		}
		log.Warn("agent: join failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent: join: %w", errors.Join(ctx.Err(), err))
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// probe marks the workload ready while addr accepts TCP connections.
func probe(ctx context.Context, addr string, every time.Duration, setReady func(bool)) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, first := false, true
	for {
		c, err := (&net.Dialer{Timeout: every}).DialContext(ctx, "tcp", addr)
		ready := err == nil
		if ready {
			c.Close()
		}
		if ready != last || first {
			setReady(ready)
			last, first = ready, false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read --token-file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("--token-file %s is empty", path)
	}
	return t, nil
}

// svidFiles writes each new SVID to its directory and remembers the last
// failure.
type svidFiles struct {
	dir     string
	mu      sync.Mutex
	lastErr error
	keyDone bool
}

func (f *svidFiles) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// write replaces the files, each atomically (a reader sees the old file or
// the new one, never a part). The key is written first: it never changes
// (the agent keeps one key for its lifetime), so a reader that catches the
// new certificate with the key finds a pair.
func (f *svidFiles) write(svid *identity.SVID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastErr = f.writeLocked(svid)
	return f.lastErr
}

func (f *svidFiles) writeLocked(svid *identity.SVID) error {
	if !f.keyDone {
		der, err := x509.MarshalPKCS8PrivateKey(svid.Certificate.PrivateKey)
		if err != nil {
			return fmt.Errorf("encode key: %w", err)
		}
		if err := writeAtomic(filepath.Join(f.dir, KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return err
		}
		f.keyDone = true
	}
	var chain, bundle []byte
	for _, der := range svid.Certificate.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	for _, c := range svid.Bundle {
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if len(bundle) == 0 {
		return errors.New("control plane returned an empty trust bundle")
	}
	if err := writeAtomic(filepath.Join(f.dir, BundleFile), bundle, 0o644); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(f.dir, CertFile), chain, 0o644)
}

// writeAtomic writes b to a temporary file beside path, then renames it.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing left to remove
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
