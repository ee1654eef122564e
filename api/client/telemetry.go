package client

import (
	"github.com/weftmesh/weft/api/tapevent"

	"encoding/json"
	"time"
)

// The telemetry API: what the control plane learns from scraping every
// proxy's /metrics (GET /api/v1/stats) and from their tap streams
// (GET /api/v1/tap). `weft stat`, `weft top`, `weft tap` and the dashboard
// read these types.

// Golden are a service's, an edge's or a workload's golden metrics over a
// window, from the destination side's (inbound) metrics.
type Golden struct {
	// Requests is the number completed in the window; RPS is per second.
	Requests float64 `json:"requests"`
	RPS      float64 `json:"rps"`
	// SuccessRate is the share of non-5xx responses (gRPC: grpc-status OK
	// or an application status), 0..1; nil when there were no requests.
	SuccessRate *float64 `json:"successRate,omitempty"`
	// Latency percentiles in milliseconds, interpolated within histogram
	// buckets; nil when there were no requests.
	P50Ms *float64 `json:"p50Ms,omitempty"`
	P95Ms *float64 `json:"p95Ms,omitempty"`
	P99Ms *float64 `json:"p99Ms,omitempty"`
	// MTLSShare is the share of requests that travelled over mutual TLS.
	MTLSShare *float64 `json:"mtlsShare,omitempty"`
	// TCP connections opened in the window, open at its end, and bytes
	// each way (counted as connections close).
	TCPConnections float64 `json:"tcpConnections,omitempty"`
	TCPOpen        float64 `json:"tcpOpen,omitempty"`
	BytesSent      float64 `json:"bytesSent,omitempty"`
	BytesReceived  float64 `json:"bytesReceived,omitempty"`
}

// ServiceStats is one service's golden metrics.
type ServiceStats struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Golden
	// Instances is how many of its proxies were scraped.
	Instances int      `json:"instances"`
	Versions  []string `json:"versions,omitempty"`
}

// EdgeStats is the calls from one service to another ("name.namespace";
// From is "unknown" for callers outside the mesh).
type EdgeStats struct {
	From string `json:"from"`
	To   string `json:"to"`
	Golden
}

// WorkloadStats is one proxy's golden metrics.
type WorkloadStats struct {
	ID        string `json:"id"`
	Service   string `json:"service"`
	Namespace string `json:"namespace"`
	Version   string `json:"version,omitempty"`
	Address   string `json:"address"`
	Golden
	// Error says why the last scrape failed, if it did.
	Error string `json:"error,omitempty"`
}

// Stats is GET /api/v1/stats[?window=1m]: every service, edge and workload.
type Stats struct {
	Window    string          `json:"window"`
	At        time.Time       `json:"at"`
	Services  []ServiceStats  `json:"services"`
	Edges     []EdgeStats     `json:"edges"`
	Workloads []WorkloadStats `json:"workloads"`
}

// TapEvent is one request seen by a proxy, as GET /api/v1/tap streams them
// (JSON lines); see tapevent.Event.
type TapEvent = tapevent.Event

// ProxyConfig is GET /api/v1/proxy-config?workload=ID: a proxy's live
// configuration, read from its admin port (private keys never included).
type ProxyConfig struct {
	Workload string `json:"workload"`
	Admin    string `json:"admin"`
	// ConfigDump is the proxy's /config_dump: listeners, routes, clusters,
	// endpoints and secrets by name, each in protojson.
	ConfigDump json.RawMessage `json:"configDump"`
	// Certificates is the proxy's /certs: its SVID and trust bundle, public parts only.
	Certificates json.RawMessage `json:"certificates,omitempty"`
}
