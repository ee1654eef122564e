package apps

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
)

// catalogVersionHeader names the catalog version on every catalog response,
// so a caller can tell versions apart without reading the body.
const catalogVersionHeader = "x-catalog-version"

// item is one product in the catalog.
type item struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int    `json:"price_cents"`
}

// catalogItems is the body of GET /items.
type catalogItems struct {
	Version  string `json:"version"`
	Instance string `json:"instance"`
	Items    []item `json:"items"`
}

var products = []item{
	{ID: "sku-1", Name: "shuttle", PriceCents: 1250},
	{ID: "sku-2", Name: "bobbin", PriceCents: 300},
	{ID: "sku-3", Name: "heddle", PriceCents: 75},
}

// runCatalog serves the product list over HTTP/1.1.
//
// Flags: --listen ADDR, --version V, --fail-rate F (fraction of GET /items
// answered 503; /healthz never fails), --instance NAME (default: the bound
// address).
func runCatalog(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("catalog", stdout)
	addr := fs.String("listen", "127.0.0.1:0", "address to serve on")
	version := fs.String("version", "v1", "version reported in responses")
	failRate := fs.Float64("fail-rate", 0, "fraction of GET /items requests answered 503, 0 to 1")
	instance := fs.String("instance", "", "instance name in responses (default: the bound address)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *failRate < 0 || *failRate > 1 {
		return fmt.Errorf("--fail-rate %v: must be between 0 and 1", *failRate)
	}

	logger := newLog("catalog", stdout)
	ln, err := listen(ctx, logger, *addr, fmt.Sprintf("(version %s, fail-rate %g)", *version, *failRate))
	if err != nil {
		return err
	}
	if *instance == "" {
		*instance = ln.Addr().String()
	}
	return serveHTTP(ctx, logger, ln, catalogHandler(*version, *instance, *failRate))
}

// catalogHandler routes GET /items and GET /healthz.
func catalogHandler(version, instance string, failRate float64) http.Handler {
	body := catalogItems{Version: version, Instance: instance, Items: products}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items", func(w http.ResponseWriter, _ *http.Request) {
		if failRate > 0 && rand.Float64() < failRate {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "injected failure"})
			return
		}
		writeJSON(w, http.StatusOK, body)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(catalogVersionHeader, version)
		mux.ServeHTTP(w, r)
	})
}
