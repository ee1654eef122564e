package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/demo/ledgerpb"
)

// frontendCacheKey is where the frontend keeps the last catalog version seen.
const frontendCacheKey = "frontend:last-catalog-version"

// runFrontend serves GET /, which calls catalog, ledger and cache in turn.
//
// Flags: --listen ADDR, --catalog URL (base URL; GET URL/items), --ledger
// ADDR (gRPC, plaintext), --cache ADDR (TCP), --timeout D (per dependency
// call), --cache-conns N (pooled cache connections). Plaintext is deliberate:
// each address is the local port of the frontend's sidecar, which does mTLS.
func runFrontend(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("frontend", stdout)
	addr := fs.String("listen", "127.0.0.1:0", "address to serve on")
	catalogBase := fs.String("catalog", "", "catalog base URL, e.g. http://127.0.0.1:15101 (required)")
	ledgerAddr := fs.String("ledger", "", "ledger gRPC address (required)")
	cacheAddr := fs.String("cache", "", "cache TCP address (required)")
	timeout := fs.Duration("timeout", 2*time.Second, "timeout of each dependency call")
	cacheConns := fs.Int("cache-conns", 4, "most connections kept open to the cache")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *catalogBase == "" || *ledgerAddr == "" || *cacheAddr == "":
		return errors.New("--catalog, --ledger and --cache are required")
	case *timeout <= 0:
		return fmt.Errorf("--timeout %v: must be positive", *timeout)
	case *cacheConns < 1:
		return fmt.Errorf("--cache-conns %d: must be at least 1", *cacheConns)
	}
	itemsURL, err := catalogItemsURL(*catalogBase)
	if err != nil {
		return err
	}

	ledgerConn, err := grpc.NewClient(*ledgerAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("--ledger: %w", err)
	}
	defer ledgerConn.Close()
	cache := newCacheClient(*cacheAddr, *cacheConns)
	defer cache.Close()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 16
	defer transport.CloseIdleConnections()

	logger := newLog("frontend", stdout)
	f := &frontend{
		itemsURL: itemsURL,
		http:     &http.Client{Transport: transport},
		ledger:   ledgerpb.NewLedgerClient(ledgerConn),
		cache:    cache,
		timeout:  *timeout,
		deps:     &depHealth{log: logger, failing: map[string]bool{}},
	}
	ln, err := listen(ctx, logger, *addr,
		fmt.Sprintf("(catalog %s, ledger %s, cache %s)", *catalogBase, *ledgerAddr, *cacheAddr))
	if err != nil {
		return err
	}
	return serveHTTP(ctx, logger, ln, f.handler())
}

// catalogItemsURL validates the catalog base URL and returns its /items URL.
func catalogItemsURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("--catalog: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--catalog %q: want http://host:port", base)
	}
	return u.JoinPath("items").String(), nil
}

// frontPage is the body of a successful GET /.
type frontPage struct {
	Catalog struct {
		Version  string `json:"version"`
		Instance string `json:"instance"`
		Items    int    `json:"items"`
	} `json:"catalog"`
	Ledger struct {
		Seq      uint64 `json:"seq"`
		Instance string `json:"instance"`
	} `json:"ledger"`
	Cache struct {
		Hit             bool   `json:"hit"`
		PreviousVersion string `json:"previous_version,omitempty"`
	} `json:"cache"`
}

// frontError is the body of a 502: which dependency failed, and how.
type frontError struct {
	Failed string `json:"failed"`
	Error  string `json:"error"`
}

type frontend struct {
	itemsURL string
	http     *http.Client
	ledger   ledgerpb.LedgerClient
	cache    *cacheClient
	timeout  time.Duration
	deps     *depHealth
}

func (f *frontend) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", f.serveIndex)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

func (f *frontend) serveIndex(w http.ResponseWriter, r *http.Request) {
	page, err := f.compose(r.Context())
	if err != nil {
		var de *depError
		if errors.As(err, &de) {
			writeJSON(w, http.StatusBadGateway, frontError{Failed: de.dep, Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusInternalServerError, frontError{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// compose calls the dependencies in order: the catalog's answer goes into
// the ledger entry and the cache.
func (f *frontend) compose(ctx context.Context) (*frontPage, error) {
	page := &frontPage{}
	var items catalogItems
	err := f.call(ctx, "catalog", func(ctx context.Context) error {
		var err error
		items, err = f.fetchCatalog(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	page.Catalog.Version = items.Version
	page.Catalog.Instance = items.Instance
	page.Catalog.Items = len(items.Items)

	err = f.call(ctx, "ledger", func(ctx context.Context) error {
		receipt, err := f.ledger.Record(ctx, &ledgerpb.Entry{
			Source: "frontend",
			Note:   fmt.Sprintf("listed %d items from catalog %s", len(items.Items), items.Version),
		})
		if err != nil {
			return err
		}
		page.Ledger.Seq = receipt.GetSeq()
		page.Ledger.Instance = receipt.GetInstance()
		return nil
	})
	if err != nil {
		return nil, err
	}

	err = f.call(ctx, "cache", func(ctx context.Context) error {
		prev, hit, err := f.cache.Get(ctx, frontendCacheKey)
		if err != nil {
			return err
		}
		page.Cache.Hit, page.Cache.PreviousVersion = hit, prev
		return f.cache.Set(ctx, frontendCacheKey, items.Version)
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// call runs one dependency call under the per-call timeout and notes the
// dependency's health, unless it was the client that gave up.
func (f *frontend) call(ctx context.Context, dep string, fn func(context.Context) error) error {
	callCtx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	err := fn(callCtx)
	if ctx.Err() == nil {
		f.deps.observe(dep, err)
	}
	if err != nil {
		return &depError{dep: dep, err: err}
	}
	return nil
}

// fetchCatalog does GET /items on the catalog.
func (f *frontend) fetchCatalog(ctx context.Context) (catalogItems, error) {
	var items catalogItems
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.itemsURL, nil)
	if err != nil {
		return items, err
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return items, err
	}
	body := io.LimitReader(resp.Body, 1<<20)
	defer func() {
		io.Copy(io.Discard, body) // read to the end so the connection is reused
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return items, fmt.Errorf("GET %s: %s", f.itemsURL, resp.Status)
	}
	if err := json.NewDecoder(body).Decode(&items); err != nil {
		return items, fmt.Errorf("GET %s: decoding body: %w", f.itemsURL, err)
	}
	if items.Version == "" {
		items.Version = resp.Header.Get(catalogVersionHeader)
	}
	return items, nil
}

// depError says which dependency a request failed on.
type depError struct {
	dep string
	err error
}

func (e *depError) Error() string { return e.dep + ": " + e.err.Error() }
func (e *depError) Unwrap() error { return e.err }

// depHealth logs when a dependency starts failing and when it recovers, so
// an outage costs two log lines rather than one per request.
type depHealth struct {
	log *log.Logger

	mu      sync.Mutex
	failing map[string]bool
}

func (d *depHealth) observe(dep string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch was := d.failing[dep]; {
	case err != nil && !was:
		d.log.Printf("%s failing: %v", dep, err)
	case err == nil && was:
		d.log.Printf("%s recovered", dep)
	}
	d.failing[dep] = err != nil
}
