package controlplane

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// apiMetrics counts and times the HTTPS API's calls by method, path pattern
// and status. Paths are reduced to their patterns (IDs become "{id}",
// unknown paths "other"), so cardinality stays bounded whatever clients send.
func apiMetrics(reg prometheus.Registerer, next http.Handler) http.Handler {
	labels := []string{"method", "path", "code"}
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_api_requests_total",
		Help: "Calls to the control plane's HTTPS API, by method, path pattern and status code.",
	}, labels)
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "weft_api_request_duration_seconds",
		Help:    "Time to answer a call to the control plane's HTTPS API.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, labels)
	reg.MustRegister(calls, duration)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		values := []string{methodLabel(r.Method), apiPattern(r.URL.Path), strconv.Itoa(sw.code)}
		calls.WithLabelValues(values...).Inc()
		duration.WithLabelValues(values...).Observe(time.Since(start).Seconds())
	})
}

// apiPaths are the API's fixed paths; apiIDPaths those followed by one ID.
var (
	apiPaths = map[string]bool{
		"/api/v1/apply": true, "/api/v1/resources": true, "/api/v1/tokens": true, "/api/v1/credentials": true,
		"/api/v1/audit": true, "/api/v1/workloads": true, "/api/v1/version": true, "/api/v1/status/routes": true,
		"/api/v1/status/policies": true, "/api/v1/explain": true, "/api/v1/ca": true, "/api/v1/ca/rotate": true,
		"/api/v1/stats": true, "/api/v1/tap": true, "/api/v1/proxy-config": true, "/api/v1/top": true,
	}
	apiIDPaths = []string{"/api/v1/tokens/", "/api/v1/credentials/"}
)

// apiPattern returns the pattern of an API path.
func apiPattern(path string) string {
	if apiPaths[path] {
		return path
	}
	for _, p := range apiIDPaths {
		if id, ok := strings.CutPrefix(path, p); ok && id != "" && !strings.Contains(id, "/") {
			return p + "{id}"
		}
	}
	return "other"
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions:
		return m
	}
	return "other"
}

// statusWriter remembers the status a handler sent.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the server's writer (the tap's
// streaming uses it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
