// Package tapevent defines the event of a live tap: what a proxy's admin
// endpoint streams and the control plane fans in. It is its own package so
// that the proxy does not link the API client.
package tapevent

import "time"

// Event is one request seen by a proxy, as its admin endpoint's GET /tap
// and the control plane's GET /api/v1/tap stream them (JSON lines). Bodies
// are never included; header values that carry credentials (authorization,
// cookie, set-cookie, proxy-authorization) are redacted.
type Event struct {
	Time      time.Time `json:"time"`
	Workload  string    `json:"workload"`
	Direction string    `json:"direction"`
	// Source and Destination are "name.namespace" ("" when unknown);
	// SourceID is the caller's SPIFFE ID.
	Source      string              `json:"source,omitempty"`
	SourceID    string              `json:"sourceId,omitempty"`
	Destination string              `json:"destination,omitempty"`
	Method      string              `json:"method"`
	Authority   string              `json:"authority"`
	Path        string              `json:"path"`
	Status      int                 `json:"status"`
	GRPCStatus  string              `json:"grpcStatus,omitempty"`
	DurationMs  float64             `json:"durationMs"`
	Route       string              `json:"route,omitempty"`
	Upstream    string              `json:"upstream,omitempty"`
	MTLS        bool                `json:"mtls"`
	Flags       []string            `json:"flags,omitempty"`
	RequestHdr  map[string][]string `json:"requestHeaders,omitempty"`
	ResponseHdr map[string][]string `json:"responseHeaders,omitempty"`
	ReqBytes    int64               `json:"requestBytes"`
	RespBytes   int64               `json:"responseBytes"`
}
