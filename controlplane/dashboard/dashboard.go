// Package dashboard is the control plane's web dashboard: a live service
// graph, a page per service, a live tap and the mesh's certificates, served
// beside /metrics on the dashboard port with its JSON endpoints under
// /dashboard/api/. Its pages are plain HTML, CSS and JavaScript embedded in
// the binary. Like linkerd's, it asks for no credential: keep the dashboard
// address on loopback (the default) or behind something that authenticates.
package dashboard

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/ca"
)

// StatsSource gives the mesh's golden metrics over a window; the control
// plane's telemetry collector satisfies it.
type StatsSource interface {
	Stats(window time.Duration) (*client.Stats, error)
}

// TapFilter says which requests a tap streams: those of the proxies of
// service Name in Namespace (of every service in Namespace when Name is
// empty) in Direction, "inbound" (what the service receives) or "outbound"
// (the calls it makes).
type TapFilter struct {
	Namespace string
	Name      string
	Direction string
}

// Tap directions.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// TapSource streams requests as proxies see them until ctx ends or the
// source closes the channel.
type TapSource interface {
	Tap(ctx context.Context, f TapFilter) (<-chan client.TapEvent, error)
}

// TapFunc adapts a function (such as one calling the telemetry collector
// with its own filter type) to a TapSource.
type TapFunc func(ctx context.Context, f TapFilter) (<-chan client.TapEvent, error)

// Tap calls f.
func (f TapFunc) Tap(ctx context.Context, filter TapFilter) (<-chan client.TapEvent, error) {
	return f(ctx, filter)
}

// ResourceLister lists stored resources; *store.Store satisfies it.
type ResourceLister interface {
	// List returns a kind's objects in namespace, or in every namespace
	// when it is empty.
	List(ctx context.Context, kind, namespace string) ([]*v1alpha1.Object, error)
}

// WorkloadLister lists registered workloads; *store.Store satisfies it.
type WorkloadLister interface {
	ListWorkloads(ctx context.Context, namespace, service string) ([]*meshv1.Workload, error)
}

// StatusSource says what became of Routes and destination policies;
// *apiserver.Statuses satisfies it (and so does *client.Client).
type StatusSource interface {
	RouteStatuses(ctx context.Context, namespace string) ([]client.RouteStatus, error)
	PolicyStatuses(ctx context.Context, kind, namespace string) ([]client.PolicyStatus, error)
}

// CAStatusSource reports the mesh CA's certificates and rotation; *ca.CA
// satisfies it.
type CAStatusSource interface {
	Status(ctx context.Context) (*ca.Status, error)
}

// Options are the dashboard's sources. Resources and Workloads are
// required; a page whose source is nil says what it cannot show.
type Options struct {
	Resources ResourceLister
	Workloads WorkloadLister
	// Stats and Tap come from the telemetry collector.
	Stats StatsSource
	Tap   TapSource
	// Statuses gives the status of Routes and policies.
	Statuses StatusSource
	// CA gives the certificates page.
	CA CAStatusSource
	// Window is the default window of golden metrics (30s when zero).
	Window time.Duration
	// MaxTaps bounds the tap streams open at once (8 when zero): the
	// dashboard has no credential, so a page left open must not cost more.
	MaxTaps int
	// Hosts are the host names, besides IP addresses and localhost, that
	// the dashboard answers to. Refusing other names keeps a web page from
	// reaching a loopback dashboard through DNS rebinding.
	Hosts []string
	// Version is shown in the page footer.
	Version string
	Log     *slog.Logger
}

// Default fills in the optional fields.
func (o *Options) Default() {
	if o.Window <= 0 {
		o.Window = 30 * time.Second
	}
	if o.MaxTaps <= 0 {
		o.MaxTaps = 8
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

//go:embed assets
var assets embed.FS

// Dashboard serves the pages and their API.
type Dashboard struct {
	opts Options
	mux  *http.ServeMux
	taps chan struct{}

	closeOnce sync.Once
	// closed ends every tap stream when the server shuts down: Shutdown
	// waits for handlers, and a stream would never end by itself.
	closed chan struct{}
}

// New returns the dashboard. Mount it at "/dashboard/" (and redirect "/"
// there); call Close when its server shuts down.
func New(opts Options) *Dashboard {
	opts.Default()
	d := &Dashboard{opts: opts, mux: http.NewServeMux(), taps: make(chan struct{}, opts.MaxTaps), closed: make(chan struct{})}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/dashboard/", http.FileServerFS(static))
	d.mux.Handle("GET /dashboard/", noCache(files))
	d.mux.HandleFunc("GET /dashboard/api/info", d.info)
	d.mux.HandleFunc("GET /dashboard/api/graph", d.graph)
	d.mux.HandleFunc("GET /dashboard/api/services/{namespace}/{name}", d.service)
	d.mux.HandleFunc("GET /dashboard/api/tap", d.tap)
	d.mux.HandleFunc("GET /dashboard/api/certs", d.certs)
	d.mux.HandleFunc("GET /dashboard/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no dashboard API at "+r.URL.Path)
	})
	return d
}

// ServeHTTP serves /dashboard/ and its API.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !d.hostAllowed(r.Host) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("the dashboard does not answer to host %q: use its IP address, or localhost", r.Host))
		return
	}
	h := w.Header()
	// The pages load only their own scripts and styles, and are never framed.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	d.mux.ServeHTTP(w, r)
}

// hostAllowed reports whether the Host header names the dashboard as
// Options.Hosts allows.
func (d *Dashboard) hostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	for _, h := range d.opts.Hosts {
		if strings.EqualFold(host, h) {
			return true
		}
	}
	return false
}

// Close ends the open tap streams.
func (d *Dashboard) Close() {
	d.closeOnce.Do(func() { close(d.closed) })
}

// Info is GET /dashboard/api/info: what this dashboard can show.
type Info struct {
	Version string `json:"version,omitempty"`
	// Window is the default window of golden metrics.
	Window string `json:"window"`
	// Telemetry, Tap, Statuses and CA say which sources are present.
	Telemetry bool `json:"telemetry"`
	Tap       bool `json:"tap"`
	Statuses  bool `json:"statuses"`
	CA        bool `json:"ca"`
}

func (d *Dashboard) info(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, Info{Version: d.opts.Version, Window: d.opts.Window.String(),
		Telemetry: d.opts.Stats != nil, Tap: d.opts.Tap != nil, Statuses: d.opts.Statuses != nil, CA: d.opts.CA != nil})
}

// noCache makes a browser revalidate the assets, so a new control plane
// version is picked up on reload.
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

var _ http.Handler = (*Dashboard)(nil)
