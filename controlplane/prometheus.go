package controlplane

import (
	"net/http"

	"github.com/weftmesh/weft/controlplane/promsd"
)

// withPrometheusSD adds, in front of the metrics port's handler, the
// Prometheus HTTP service discovery of every registered proxy
// (weft prometheus-config).
func withPrometheusSD(next http.Handler, l promsd.Lister) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+promsd.Path, promsd.Handler(l))
	mux.Handle("/", next)
	return mux
}
