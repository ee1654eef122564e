// Package store is the control plane's only state: etcd, embedded by default
// or external with --etcd-endpoints. Every replica of the control plane reads
// and watches the same keys; nothing is kept anywhere else.
//
// Keys:
//
//	/weft/resources/<kind>/<namespace>/<name>   resources (namespace empty for cluster-scoped kinds)
//	/weft/endpoints/<namespace>/<service>/<id>  registered workloads, on a lease
//	/weft/ca/...                                mesh CA and signing keys
//	/weft/tokens/<id>                           join tokens
//	/weft/admin/<id>                            API credentials (hashes, roles)
//	/weft/audit/<time>-<rand>                   audit log of API changes, bounded
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Key prefixes.
const (
	PrefixResources = "/weft/resources/"
	PrefixEndpoints = "/weft/endpoints/"
	PrefixCA        = "/weft/ca/"
	PrefixTokens    = "/weft/tokens/"
	PrefixAdmin     = "/weft/admin/"
	PrefixAudit     = "/weft/audit/"
)

// Config says which etcd to use.
type Config struct {
	// Endpoints of an external etcd cluster. Empty: start an embedded etcd in DataDir.
	Endpoints []string
	// DataDir holds the embedded etcd's data (DataDir/etcd).
	DataDir string
	// ClientURL and PeerURL are where the embedded etcd listens; defaults are
	// loopback ports chosen by the kernel, so several control planes on one machine never collide.
	ClientURL, PeerURL string
	// Fast shortens the embedded etcd's raft timers (for tests).
	Fast bool
	Log  *slog.Logger
}

// Store is an open connection to etcd, and the embedded server if there is one.
type Store struct {
	client    *clientv3.Client
	etcd      *embed.Etcd
	closeOnce sync.Once
	closeErr  error

	// beforeApplyCommit, if set, runs between Apply's read and its write;
	// tests use it to race a concurrent writer.
	beforeApplyCommit func()
}

// Open starts the embedded etcd (unless external endpoints are given) and connects to it.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Store{}
	endpoints := cfg.Endpoints
	if len(endpoints) == 0 {
		e, err := startEmbedded(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		s.etcd = e
		endpoints = []string{e.Clients[0].Addr().String()}
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Context:     ctx,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: connect to etcd %v: %w", endpoints, err)
	}
	s.client = client
	// Fail now, with a clear message, rather than on the first request.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := client.Get(pctx, "/weft/ping"); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: etcd at %v does not answer: %w", endpoints, err)
	}
	return s, nil
}

func startEmbedded(ctx context.Context, cfg Config, log *slog.Logger) (*embed.Etcd, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("store: embedded etcd needs a data dir")
	}
	dir := filepath.Join(cfg.DataDir, "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", dir, err)
	}
	ec := embed.NewConfig()
	ec.Name = "weft"
	ec.Dir = dir
	ec.Logger = "zap"
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	clientURL := orDefault(cfg.ClientURL, "http://127.0.0.1:0")
	peerURL := orDefault(cfg.PeerURL, "http://127.0.0.1:0")
	cu, err := url.Parse(clientURL)
	if err != nil {
		return nil, fmt.Errorf("store: client url %q: %w", clientURL, err)
	}
	pu, err := url.Parse(peerURL)
	if err != nil {
		return nil, fmt.Errorf("store: peer url %q: %w", peerURL, err)
	}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.InitialCluster = ec.Name + "=" + pu.String()
	if cfg.Fast {
		ec.TickMs, ec.ElectionMs = 10, 100
	}
	// Every endpoint change is a new revision: without compaction the
	// history, and the database, grow with churn for ever. Watchers that
	// fall behind a compaction reload (see meshstate).
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "10m"
	log.Info("starting embedded etcd", "dir", dir)
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("store: start embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("store: embedded etcd in %s: %w", dir, err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("store: embedded etcd in %s did not become ready in 60s", dir)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Client returns the etcd client.
func (s *Store) Client() *clientv3.Client { return s.client }

// Embedded reports whether this store runs its own etcd.
func (s *Store) Embedded() bool { return s.etcd != nil }

// Close disconnects and stops the embedded etcd. It is safe to call more than
// once (embed.Etcd.Close panics when called twice).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.client != nil {
			s.closeErr = s.client.Close()
		}
		if s.etcd != nil {
			s.etcd.Close()
		}
	})
	return s.closeErr
}

// PutIfAbsent writes value at key unless the key exists, in one transaction.
// It returns the value at key afterwards and whether this call wrote it.
func PutIfAbsent(ctx context.Context, kv *clientv3.Client, key string, value []byte, opts ...clientv3.OpOption) ([]byte, bool, error) {
	resp, err := kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(value), opts...)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, false, err
	}
	if resp.Succeeded {
		return value, true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		// The transaction compared and read at one revision.
		return nil, false, fmt.Errorf("%s exists but could not be read", key)
	}
	return kvs[0].Value, false, nil
}
