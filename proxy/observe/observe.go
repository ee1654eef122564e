// Package observe is the contract between the proxy's data path and what
// watches it: metrics, access logs, tap and tracing are Observers. The
// connection manager (proxy/hcm) fills a Request for every HTTP request it
// handles and the TCP proxy (proxy/tcp) a Conn for every connection; each
// observer configured on the listener sees them.
//
// Observers run on the request's goroutine: Start before routing, Done
// once the response has ended. They must be cheap and must never block;
// anything slow (an export, a write to a file) goes through a bounded queue
// that drops, and counts, what it cannot take.
package observe

import (
	"net/http"
	"time"
)

// Direction is which side of the proxy a listener serves.
type Direction string

const (
	// Inbound: from other proxies (or PERMISSIVE plaintext clients) to the local app.
	Inbound Direction = "inbound"
	// Outbound: from the local app to the mesh.
	Outbound Direction = "outbound"
)

// Peer names a workload at one end of an exchange. Fields are "" when
// unknown (a plaintext client, a caller outside the mesh).
type Peer struct {
	// ID is the SPIFFE ID, as presented in its certificate.
	ID        string
	Service   string
	Namespace string
	Version   string
}

// Flags say what happened to a request besides its status, as Envoy's
// response flags do.
type Flags uint32

const (
	// NoRoute: no route matched (404).
	NoRoute Flags = 1 << iota
	// NoHealthyUpstream: the cluster had no endpoint to pick (503).
	NoHealthyUpstream
	// UpstreamConnectFailure: no connection to the endpoint could be made.
	UpstreamConnectFailure
	// UpstreamReset: the upstream broke off before or during its response.
	UpstreamReset
	// UpstreamTimeout: the route's timeout or a per-try timeout fired.
	UpstreamTimeout
	// Overflow: a circuit breaker refused the request.
	Overflow
	// Retried: at least one retry was made.
	Retried
	// Denied: an authorisation filter refused the request (403).
	Denied
	// Unauthenticated: the JWT filter refused the request (401).
	Unauthenticated
	// RateLimited: a rate limit refused the request (429).
	RateLimited
	// FaultInjected: the fault filter delayed or aborted the request.
	FaultInjected
	// DownstreamClosed: the client went away before the response ended.
	DownstreamClosed
)

var flagNames = [...]string{
	"no_route", "no_healthy_upstream", "upstream_connect_failure", "upstream_reset",
	"upstream_timeout", "overflow", "retried", "denied", "unauthenticated",
	"rate_limited", "fault_injected", "downstream_closed",
}

// Names returns the set flags' names, in bit order; nil for none.
func (f Flags) Names() []string {
	var out []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// Request is one HTTP exchange as the connection manager saw it. Fields
// marked (Done) are set only when Done is called.
type Request struct {
	Direction Direction
	// Listener is the name of the listener that took the request.
	Listener string
	Start    time.Time
	// Request is the downstream request. Its Header is the one forwarded
	// upstream: an observer may add to it in Start (trace propagation).
	Request *http.Request
	// Source and Destination are the two workloads' identities: on the
	// inbound side Source comes from the peer certificate, on the outbound
	// side Destination from the picked endpoint. (Done)
	Source, Destination Peer
	// MTLS says the hop this record describes was mutual TLS: the inbound
	// connection, or the outbound connection to the picked endpoint. (Done)
	MTLS bool
	// Route is the matched route's name, Cluster its cluster, Upstream the
	// address of the endpoint of the last attempt; "" when none. (Done)
	Route, Cluster, Upstream string
	// Status is the HTTP status sent downstream (499 when the client left
	// first); GRPCStatus the grpc-status sent, "" if none. (Done)
	Status     int
	GRPCStatus string
	// ResponseHeader is the header sent downstream. (Done)
	ResponseHeader http.Header
	// RequestBytes and ResponseBytes count body bytes. (Done)
	RequestBytes, ResponseBytes int64
	// Attempts is how many times the request was sent upstream. (Done)
	Attempts int
	Flags    Flags
	// Duration runs from Start to the end of the response; UpstreamLatency
	// from the last attempt's start to its response headers. (Done)
	Duration, UpstreamLatency time.Duration
	// Reason is the x-weft-error of a local reply ("" otherwise). (Done)
	Reason string

	// Trace is the tracing observer's own state for this request.
	Trace any
}

// Conn is one TCP connection through the TCP proxy.
type Conn struct {
	Direction           Direction
	Listener            string
	Start               time.Time
	Source, Destination Peer
	MTLS                bool
	Cluster, Upstream   string
	// Sent is bytes from downstream to upstream, Received the other way. (Done)
	Sent, Received int64
	Duration       time.Duration
	// Denied says a network RBAC filter closed it; Reason says why. (Done)
	Denied bool
	Reason string
}

// Observer watches HTTP requests.
type Observer interface {
	// Start is called when the request arrives, before routing and filters.
	Start(r *Request)
	// Done is called once the response has ended; r must not be kept.
	Done(r *Request)
}

// ConnObserver watches TCP connections.
type ConnObserver interface {
	ConnStart(c *Conn)
	// ConnDone is called when both directions have ended; c must not be kept.
	ConnDone(c *Conn)
}
