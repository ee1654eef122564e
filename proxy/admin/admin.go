// Package admin serves the proxy's admin endpoint: readiness, liveness,
// metrics, the applied xDS config, clusters, the current certificate, and
// the Go runtime's profiles for callers on the same host.
package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source is what the admin endpoint reports on.
type Source interface {
	// Ready reports whether the proxy has its identity and a complete config;
	// the reason says what is missing when it is not.
	Ready() (bool, string)
	ConfigDump() any
	WriteClusters(w io.Writer)
	// Certificates describes the proxy's SVID and trust bundle.
	Certificates() any
	// Drain starts a graceful drain (as SIGTERM does).
	Drain()
}

// Tapper is a Source that also streams live requests (GET /tap).
type Tapper interface {
	TapHandler() http.Handler
}

// Handler returns the admin mux. log may be nil.
func Handler(src Source, gather prometheus.Gatherer, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := src.Ready(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, src.ConfigDump())
	})
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		src.WriteClusters(w)
	})
	mux.HandleFunc("GET /certs", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, src.Certificates())
	})
	if t, ok := src.(Tapper); ok {
		mux.Handle("GET /tap", t.TapHandler())
	}
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, _ *http.Request) {
		log.Info("drain requested through the admin endpoint")
		src.Drain()
		io.WriteString(w, "draining\n")
	})
	// The profiles are how the proxy is measured under load (Envoy's admin
	// has /cpuprofiler and /heapprofiler for the same). The admin address
	// may be reachable from elsewhere for Prometheus, so they are served to
	// loopback callers only: a CPU profile costs the proxy while it runs.
	mux.Handle("GET /debug/pprof/", localOnly(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/cmdline", localOnly(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("GET /debug/pprof/profile", localOnly(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/symbol", localOnly(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("GET /debug/pprof/trace", localOnly(http.HandlerFunc(pprof.Trace)))
	return mux
}

// localOnly serves h to callers from a loopback address and refuses others.
func localOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r.RemoteAddr) {
			http.Error(w, "admin: profiles are served to loopback callers only; run the request on the proxy's host", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// fromLoopback reports whether a request's RemoteAddr is a loopback address.
func fromLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// NewServer wraps the handler in a server with sane timeouts.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
}

// writeJSON encodes v before writing anything, so that a value that cannot
// be encoded is a 500 rather than a 200 with an error where the JSON should be.
func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, fmt.Sprintf("admin: encode JSON: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}
