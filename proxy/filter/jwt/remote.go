package jwt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"
	"weak"
)

// A remote key set is fetched on the request path, never by a goroutine of
// its own: the first request that needs keys starts a fetch and waits for
// it (bounded by the fetch's timeout and the request's context); later
// requests use the keys in hand. A request after the cache duration starts
// a fetch in the background and goes on with the keys it has; a token whose
// kid the keys lack starts one and waits for it, at most once every
// minRefetchInterval, so that made-up kids cannot make the proxy hammer the
// server. A failed fetch is logged and keeps the last good keys. Every
// fetch is bounded by its timeout, so no goroutine outlives it.
//
// Listeners are rebuilt on every change of configuration; sources are
// shared across rebuilds by what defines them (URL, roots, durations), so
// fetched keys survive a rebuild. A source no config uses any more is
// garbage-collected.

// minRefetchInterval spaces the fetches that a token with an unknown kid,
// or a failed fetch, may start.
const minRefetchInterval = 2 * time.Second

// remoteKeys is the key set of one jwks_uri.
type remoteKeys struct {
	uri           string
	client        *http.Client
	cacheDuration time.Duration
	log           *slog.Logger
	// minRefetch is minRefetchInterval but in tests.
	minRefetch time.Duration

	mu sync.Mutex
	// keys is the last good key set and when it was fetched; nil before
	// the first success.
	keys      *keySet
	fetchedAt time.Time
	// inflight, when set, is closed once the fetch under way ends.
	inflight chan struct{}
	// lastTry is when the last fetch started.
	lastTry time.Time
}

// sourceKey is what makes two configs share a source.
type sourceKey struct {
	uri, roots     string
	cache, timeout time.Duration
}

var (
	sourcesMu sync.Mutex
	sources   = map[sourceKey]weak.Pointer[remoteKeys]{}
)

// sharedRemoteKeys returns the source of k, making it if no config holds
// one. roots is nil for the system's roots.
func sharedRemoteKeys(k sourceKey, roots *x509.CertPool, log *slog.Logger) *remoteKeys {
	sourcesMu.Lock()
	defer sourcesMu.Unlock()
	if s := sources[k].Value(); s != nil {
		return s
	}
	s := newRemoteKeys(k.uri, roots, k.cache, k.timeout, log)
	wp := weak.Make(s)
	sources[k] = wp
	runtime.AddCleanup(s, func(k sourceKey) {
		sourcesMu.Lock()
		defer sourcesMu.Unlock()
		if sources[k] == wp {
			delete(sources, k)
		}
	}, k)
	return s
}

func newRemoteKeys(uri string, roots *x509.CertPool, cacheDuration, timeout time.Duration, log *slog.Logger) *remoteKeys {
	tr := &http.Transport{
		// Never through HTTP_PROXY: the proxy may be the apps' proxy.
		Proxy:               nil,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: timeout,
		// Fetches are minutes apart: no idle connection is kept, and so
		// no goroutine of the transport outlives a fetch.
		DisableKeepAlives: true,
	}
	return &remoteKeys{
		uri: uri,
		client: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if req.URL.Scheme != "https" {
					return errors.New("redirect away from https")
				}
				if len(via) >= 5 {
					return errors.New("too many redirects")
				}
				return nil
			},
		},
		cacheDuration: cacheDuration,
		log:           log,
		minRefetch:    minRefetchInterval,
	}
}

// get returns the keys to check a token of alg and kid with. It may wait
// for a fetch, until ctx ends.
func (s *remoteKeys) get(ctx context.Context, alg, kid string) (*keySet, *failure) {
	now := time.Now()
	s.mu.Lock()
	keys := s.keys
	var wait chan struct{}
	switch {
	case keys == nil:
		// Nothing to go on: wait for a fetch, unless one just failed.
		wait = s.startLocked(now, s.lastTry.IsZero() || now.Sub(s.lastTry) >= s.minRefetch)
	case len(keys.find(alg, kid, nil)) == 0:
		// Perhaps the issuer rotated its keys.
		wait = s.startLocked(now, now.Sub(s.lastTry) >= s.minRefetch)
	case now.Sub(s.fetchedAt) >= s.cacheDuration:
		s.startLocked(now, now.Sub(s.lastTry) >= s.minRefetch)
	}
	s.mu.Unlock()

	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
		}
		s.mu.Lock()
		keys = s.keys
		s.mu.Unlock()
	}
	if keys == nil {
		return nil, errJWKSFetch
	}
	return keys, nil
}

// startLocked starts a fetch if none is under way and may is true, and
// returns the channel that closes when the fetch under way, if any, ends.
func (s *remoteKeys) startLocked(now time.Time, may bool) chan struct{} {
	if s.inflight != nil || !may {
		return s.inflight
	}
	done := make(chan struct{})
	s.inflight, s.lastTry = done, now
	go func() {
		defer close(done)
		keys, err := s.fetch()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.inflight = nil
		if err != nil {
			// The last good keys stay in use.
			s.log.Warn("jwks fetch failed; keeping the last good keys", "uri", s.uri, "err", err, "have_keys", s.keys != nil)
			return
		}
		s.keys, s.fetchedAt = keys, time.Now()
		s.log.Info("jwks fetched", "uri", s.uri, "keys", len(keys.keys))
	}()
	return done
}

// fetch gets and parses the key set once; the client's timeout bounds it.
func (s *remoteKeys) fetch() (*keySet, error) {
	req, err := http.NewRequest(http.MethodGet, s.uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the key set: %w", err)
	}
	return parseJWKS(body)
}
