package controlplane

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/dashboard"
	"github.com/weftmesh/weft/controlplane/telemetry"
	"github.com/weftmesh/weft/controlplane/xds"
)

// dashboardHandler serves the web dashboard (at /dashboard/, where / leads),
// the control plane's own metrics and health, the connected proxies as
// JSON, and the Go runtime profiles under /debug/pprof/. Like the rest of
// the dashboard, the profiles are meant for a loopback --dashboard-addr:
// they reveal how the process runs, not its secrets, but a CPU profile costs
// the control plane while it is taken.
func dashboardHandler(gather prometheus.Gatherer, x *xds.Server, dash *dashboard.Dashboard) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/dashboard/", dash)
	mux.Handle("GET /{$}", http.RedirectHandler("/dashboard/", http.StatusFound))
	mux.Handle("GET /metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /debug/proxies", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(x.Nodes())
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// dashboardTap lets the dashboard's live tap read the telemetry's.
func dashboardTap(src telemetry.Source) dashboard.TapFunc {
	return func(ctx context.Context, f dashboard.TapFilter) (<-chan client.TapEvent, error) {
		return src.Tap(ctx, telemetry.TapFilter{Namespace: f.Namespace, Service: f.Name, Direction: f.Direction})
	}
}
