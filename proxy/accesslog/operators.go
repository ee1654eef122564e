package accesslog

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/proxy/observe"
)

// record is what a line describes: an HTTP request or a TCP connection.
type record struct {
	req  *observe.Request
	conn *observe.Conn
}

type valueKind uint8

const (
	kindNull valueKind = iota
	kindString
	kindNumber
)

// value is an operator's result: absent, a string or a number.
type value struct {
	kind valueKind
	s    string
	n    int64
}

func str(s string) value {
	if s == "" {
		return value{}
	}
	return value{kind: kindString, s: s}
}

func num(n int64) value { return value{kind: kindNumber, n: n} }

func (v value) appendText(dst []byte) []byte {
	switch v.kind {
	case kindString:
		return append(dst, v.s...)
	case kindNumber:
		return strconv.AppendInt(dst, v.n, 10)
	}
	return append(dst, '-')
}

type getter func(*record) value

type operatorDef struct {
	get      getter
	needsArg bool
	bind     func(arg string) (getter, error)
}

// credentialHeaders are never written to a log, whatever the format asks.
var credentialHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "set-cookie": true, "x-api-key": true,
}

const redacted = "<redacted>"

// operators are the command operators this proxy fills, by Envoy's names.
// Those that make no sense for a record (a request operator on a TCP
// connection) are absent ("-" or null).
var operators = map[string]operatorDef{
	"START_TIME": {get: func(r *record) value {
		return str(r.start().UTC().Format(time.RFC3339Nano))
	}},
	"DURATION": {get: func(r *record) value { return num(r.duration().Milliseconds()) }},
	"RESPONSE_DURATION": {get: func(r *record) value {
		if r.req == nil || r.req.UpstreamLatency == 0 {
			return value{}
		}
		return num(r.req.UpstreamLatency.Milliseconds())
	}},
	"RESPONSE_CODE": {get: func(r *record) value {
		if r.req == nil {
			return num(0)
		}
		return num(int64(r.req.Status))
	}},
	"GRPC_STATUS_NUMBER": {get: func(r *record) value {
		if r.req == nil || r.req.GRPCStatus == "" {
			return value{}
		}
		if n, err := strconv.ParseInt(r.req.GRPCStatus, 10, 64); err == nil {
			return num(n)
		}
		return str(r.req.GRPCStatus)
	}},
	"RESPONSE_FLAGS": {get: func(r *record) value { return str(strings.Join(r.flagNames(), ",")) }},
	"RESPONSE_CODE_DETAILS": {get: func(r *record) value {
		if r.req == nil {
			return value{}
		}
		return str(r.req.Reason)
	}},
	"CONNECTION_TERMINATION_DETAILS": {get: func(r *record) value {
		if r.conn == nil {
			return value{}
		}
		return str(r.conn.Reason)
	}},
	"BYTES_RECEIVED": {get: func(r *record) value {
		if r.conn != nil {
			return num(r.conn.Sent)
		}
		return num(r.req.RequestBytes)
	}},
	"BYTES_SENT": {get: func(r *record) value {
		if r.conn != nil {
			return num(r.conn.Received)
		}
		return num(r.req.ResponseBytes)
	}},
	"UPSTREAM_REQUEST_ATTEMPT_COUNT": {get: func(r *record) value {
		if r.req == nil {
			return value{}
		}
		return num(int64(r.req.Attempts))
	}},
	"ROUTE_NAME": {get: func(r *record) value {
		if r.req == nil {
			return value{}
		}
		return str(r.req.Route)
	}},
	"UPSTREAM_CLUSTER": {get: func(r *record) value {
		if r.conn != nil {
			return str(r.conn.Cluster)
		}
		return str(r.req.Cluster)
	}},
	"UPSTREAM_HOST": {get: func(r *record) value {
		if r.conn != nil {
			return str(r.conn.Upstream)
		}
		return str(r.req.Upstream)
	}},
	"DOWNSTREAM_PEER_URI_SAN":  {get: func(r *record) value { return str(r.source().ID) }},
	"DOWNSTREAM_LOCAL_URI_SAN": {get: func(r *record) value { return str(r.destination().ID) }},
	"UPSTREAM_PEER_URI_SAN":    {get: func(r *record) value { return str(r.destination().ID) }},
	"DOWNSTREAM_REMOTE_ADDRESS": {get: func(r *record) value {
		if r.req == nil || r.req.Request == nil {
			return value{}
		}
		return str(r.req.Request.RemoteAddr)
	}},
	// The proxy's mutual TLS is TLS 1.3 only; the side it describes
	// depends on the listener's direction.
	"DOWNSTREAM_TLS_VERSION": {get: func(r *record) value { return r.tlsVersion(observe.Inbound) }},
	"UPSTREAM_TLS_VERSION":   {get: func(r *record) value { return r.tlsVersion(observe.Outbound) }},
	"PROTOCOL": {get: func(r *record) value {
		if r.req == nil || r.req.Request == nil {
			return value{}
		}
		return str(r.req.Request.Proto)
	}},
	"REQ":  {needsArg: true, bind: bindHeader(true)},
	"RESP": {needsArg: true, bind: bindHeader(false)},
}

// bindHeader compiles REQ(name[?alternative]) and RESP(...). The pseudo
// headers :method, :authority, :path and :scheme name the request's.
func bindHeader(request bool) func(string) (getter, error) {
	return func(arg string) (getter, error) {
		first, alt, _ := strings.Cut(arg, "?")
		names := []string{strings.ToLower(first)}
		if alt != "" {
			names = append(names, strings.ToLower(alt))
		}
		for _, n := range names {
			if n == "" {
				return nil, fmt.Errorf("empty header name")
			}
			if strings.HasPrefix(n, ":") && (!request || !pseudoHeaders[n]) {
				return nil, fmt.Errorf("%s is not a supported pseudo-header", n)
			}
		}
		return func(r *record) value {
			if r.req == nil || r.req.Request == nil {
				return value{}
			}
			for _, n := range names {
				if v := header(r.req, n, request); v != "" {
					return str(v)
				}
			}
			return value{}
		}, nil
	}
}

var pseudoHeaders = map[string]bool{":method": true, ":authority": true, ":path": true, ":scheme": true}

func header(req *observe.Request, name string, request bool) string {
	hr := req.Request
	if request {
		switch name {
		case ":method":
			return hr.Method
		case ":authority":
			return hr.Host
		case ":path":
			return hr.URL.RequestURI()
		case ":scheme":
			if hr.TLS != nil {
				return "https"
			}
			return "http"
		}
	}
	var h http.Header
	if request {
		h = hr.Header
	} else {
		h = req.ResponseHeader
	}
	v := h.Get(name)
	if v != "" && credentialHeaders[name] {
		return redacted
	}
	return v
}

func (r *record) start() time.Time {
	if r.conn != nil {
		return r.conn.Start
	}
	return r.req.Start
}

func (r *record) duration() time.Duration {
	if r.conn != nil {
		return r.conn.Duration
	}
	return r.req.Duration
}

func (r *record) source() observe.Peer {
	if r.conn != nil {
		return r.conn.Source
	}
	return r.req.Source
}

func (r *record) destination() observe.Peer {
	if r.conn != nil {
		return r.conn.Destination
	}
	return r.req.Destination
}

func (r *record) direction() observe.Direction {
	if r.conn != nil {
		return r.conn.Direction
	}
	return r.req.Direction
}

func (r *record) mtls() bool {
	if r.conn != nil {
		return r.conn.MTLS
	}
	return r.req.MTLS
}

// tlsVersion is "TLSv1.3" when the hop on side (inbound: downstream,
// outbound: upstream) was mutual TLS.
func (r *record) tlsVersion(side observe.Direction) value {
	if r.direction() == side && r.mtls() {
		return str("TLSv1.3")
	}
	return value{}
}

// flagNames are the record's flags in words (denied, rate_limited...);
// a TCP connection closed by policy is "denied".
func (r *record) flagNames() []string {
	if r.conn != nil {
		if r.conn.Denied {
			return []string{"denied"}
		}
		return nil
	}
	return r.req.Flags.Names()
}
