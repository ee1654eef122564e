package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/internal/testpki"
)

// otlpReceiver is an OpenTelemetry collector in the test process: the OTLP
// TraceService over gRPC and POST /v1/traces (protobuf) over HTTP, on the
// same loopback address.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	grpcAddr, httpAddr string
	// tlsAddr serves OTLP/gRPC over TLS, with a certificate of caPEM.
	tlsAddr string
	caPEM   []byte

	mu    sync.Mutex
	spans []receivedSpan
}

// receivedSpan is a span and the protocol and service it came with.
type receivedSpan struct {
	*tracepb.Span
	protocol string // "grpc" or "http"
	service  string // resource service.name
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	ip := nextIP()
	addrs := distinctAddrs(t, ip, 3)
	o := &otlpReceiver{grpcAddr: addrs[0], httpAddr: addrs[1], tlsAddr: addrs[2]}

	ca := testpki.NewCA(t, "collector CA")
	o.caPEM = ca.PEM()
	cert := ca.Issue(t, spiffe.ID{}, testpki.Options{IPs: []net.IP{net.ParseIP(ip)}})
	tl, err := net.Listen("tcp", o.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	ts := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	coltracepb.RegisterTraceServiceServer(ts, tlsReceiver{o})
	go ts.Serve(tl)
	t.Cleanup(ts.Stop)

	gl, err := net.Listen("tcp", o.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, o)
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)

	hl, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			http.Error(w, "content type "+ct, http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		o.add(&req, "http")
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	})
	hs := &http.Server{Handler: mux}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })
	return o
}

// Export is the OTLP/gRPC TraceService.
func (o *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	o.add(req, "grpc")
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// tlsReceiver is the TraceService on the TLS port.
type tlsReceiver struct{ *otlpReceiver }

func (r tlsReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.add(req, "grpc+tls")
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (o *otlpReceiver) add(req *coltracepb.ExportTraceServiceRequest, protocol string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.spans = append(o.spans, receivedSpan{Span: s, protocol: protocol, service: service})
			}
		}
	}
}

// trace returns the spans of trace id (hex) received so far.
func (o *otlpReceiver) trace(id string) []receivedSpan {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []receivedSpan
	for _, s := range o.spans {
		if hex.EncodeToString(s.TraceId) == id {
			out = append(out, s)
		}
	}
	return out
}

// propagationHeaders are what an instrumented app passes from the request
// it serves to the requests it makes.
var propagationHeaders = []string{"traceparent", "tracestate", "b3",
	"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"}

// forwarder is an app that calls next with the propagation headers it got
// and answers with what next answered.
func forwarder(next func() string) http.Handler {
	c := &http.Client{Timeout: 10 * time.Second}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequest("GET", "http://"+next()+r.URL.Path, nil)
		for _, h := range propagationHeaders {
			if v := r.Header.Values(h); len(v) > 0 {
				req.Header[http.CanonicalHeaderKey(h)] = v
			}
		}
		res, err := c.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		w.WriteHeader(res.StatusCode)
		io.Copy(w, res.Body)
	})
}

// headerEcho answers with the propagation headers it got, as JSON.
func headerEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := map[string]string{}
		for _, h := range propagationHeaders {
			if v := r.Header.Get(h); v != "" {
				got[h] = v
			}
		}
		json.NewEncoder(w).Encode(got)
	})
}

func tracingMesh(protocol, endpoint string) string {
	return fmt.Sprintf(`
apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  tracing:
    sampling: "100%%"
    otlp: {endpoint: %q, protocol: %s, insecure: true}
`, endpoint, protocol)
}

// tracingMeshTLS sends spans over OTLP/gRPC with TLS, trusting caPEM.
func tracingMeshTLS(endpoint string, caPEM []byte) string {
	ca := "        " + strings.ReplaceAll(strings.TrimSpace(string(caPEM)), "\n", "\n        ")
	return fmt.Sprintf(`
apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  tracing:
    sampling: 100
    otlp:
      endpoint: %q
      ca: |
%s
`, endpoint, ca)
}

const tracingServices = `
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: tr-a}
spec:
  ports: [{port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: tr-b}
spec:
  ports: [{port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: tr-c}
spec:
  ports: [{port: 8080, protocol: http}]
`

// TestTracing sends a request through A → B → C, each behind its own
// sidecar (A is the test itself, calling through its sidecar), and finds
// one trace of four proxy spans at the collector: A's CLIENT span, parent of
// B's SERVER span, parent of B's CLIENT span, parent of C's SERVER span;
// over OTLP/gRPC with W3C headers, then OTLP/HTTP with B3 headers, in the
// format the request came with.
func TestTracing(t *testing.T) {
	rcv := startOTLPReceiver(t)
	cp := startMeshControl(t)
	cp.apply(t, tracingServices+"---"+tracingMesh("grpc", rcv.grpcAddr))

	cIP := nextIP()
	cApp := startBackend(t, cIP, "tr-c", headerEcho())
	c := startMeshSidecar(t, cp, sidecarOpts{service: "tr-c", version: "v3", app: cApp.addr, ip: cIP}).waitReady(t)

	var b *sidecar
	var bReady = make(chan struct{})
	bIP := nextIP()
	bApp := startBackend(t, bIP, "tr-b", forwarder(func() string { <-bReady; return b.upstreams["tr-c"] }))
	b = startMeshSidecar(t, cp, sidecarOpts{service: "tr-b", version: "v2", app: bApp.addr, ip: bIP, upstreams: []string{"tr-c"}}).waitReady(t)
	close(bReady)

	a := startMeshSidecar(t, cp, sidecarOpts{service: "tr-a", version: "v1", upstreams: []string{"tr-b"}}).waitReady(t)
	sidecars := []*sidecar{a, b, c}
	url := "http://" + a.upstreams["tr-b"] + "/chain/items?secret=1"
	eventually(t, 20*time.Second, "A reaches C through B", func() error { return httpGetOK(url) })

	t.Run("grpc/w3c", func(t *testing.T) {
		got, _ := tracedGet(t, url, nil)
		tp := got["traceparent"]
		if tp == "" || got["b3"] != "" || got["x-b3-traceid"] != "" {
			t.Fatalf("C got %v: want W3C only", got)
		}
		traceID := strings.Split(tp, "-")[1]
		spans := waitTrace(t, rcv, traceID, 4)
		checkChain(t, spans, "", "grpc")
		// C's app is called by C's proxy: its SERVER span is the parent.
		if want := fmt.Sprintf("00-%s-%x-01", traceID, spans[3].SpanId); tp != want {
			t.Errorf("C got traceparent %s, want %s (C's server span)", tp, want)
		}
	})

	t.Run("grpc/caller-decides", func(t *testing.T) {
		// A trace the caller chose not to sample is recorded nowhere and
		// its decision travels on.
		const traceID = "0af7651916cd43dd8448eb211c80319c"
		got, _ := tracedGet(t, url, map[string]string{"traceparent": "00-" + traceID + "-b7ad6b7169203331-00"})
		if !strings.HasSuffix(got["traceparent"], "-00") || !strings.Contains(got["traceparent"], traceID) {
			t.Errorf("C got traceparent %q, want the unsampled trace %s", got["traceparent"], traceID)
		}
		// A caller's sampled trace is continued: A's span is its child.
		const sampled = "4bf92f3577b34da6a3ce929d0e0e4736"
		tracedGet(t, url, map[string]string{"traceparent": "00-" + sampled + "-00f067aa0ba902b7-01", "tracestate": "vendor=1"})
		spans := waitTrace(t, rcv, sampled, 4)
		checkChain(t, spans, "00f067aa0ba902b7", "grpc")
		for _, s := range spans {
			if s.TraceState != "vendor=1" {
				t.Errorf("span %q tracestate %q", s.Name, s.TraceState)
			}
		}
		time.Sleep(1500 * time.Millisecond) // a flush interval and more
		if n := len(rcv.trace(traceID)); n != 0 {
			t.Errorf("%d spans of a trace the caller did not sample", n)
		}
	})

	// Switching the collector to OTLP/HTTP replaces every proxy's exporter.
	applyListeners(t, cp, tracingMesh("http", "http://"+rcv.httpAddr), sidecars...)

	t.Run("http/b3-single", func(t *testing.T) {
		const traceID = "80f198ee56343ba864fe8b2a57d3eff7"
		got, _ := tracedGet(t, url, map[string]string{"b3": traceID + "-e457b5a2e4d86bd1-1"})
		if got["traceparent"] != "" || !strings.HasPrefix(got["b3"], traceID+"-") {
			t.Fatalf("C got %v: want b3 only, in trace %s", got, traceID)
		}
		spans := waitTrace(t, rcv, traceID, 4)
		checkChain(t, spans, "e457b5a2e4d86bd1", "http")
		if want := fmt.Sprintf("%s-%x-1-%x", traceID, spans[3].SpanId, spans[2].SpanId); got["b3"] != want {
			t.Errorf("C got b3 %s, want %s", got["b3"], want)
		}
	})

	t.Run("http/b3-multi", func(t *testing.T) {
		const traceID = "463ac35c9f6413ad48485a3953bb6124"
		got, _ := tracedGet(t, url, map[string]string{
			"x-b3-traceid": traceID, "x-b3-spanid": "a2fb4a1d1a96d312", "x-b3-sampled": "1"})
		if got["traceparent"] != "" || got["b3"] != "" || got["x-b3-traceid"] != traceID || got["x-b3-sampled"] != "1" {
			t.Fatalf("C got %v: want x-b3-* only, in trace %s", got, traceID)
		}
		spans := waitTrace(t, rcv, traceID, 4)
		checkChain(t, spans, "a2fb4a1d1a96d312", "http")
		if got["x-b3-spanid"] != fmt.Sprintf("%x", spans[3].SpanId) || got["x-b3-parentspanid"] != fmt.Sprintf("%x", spans[2].SpanId) {
			t.Errorf("C got span %s parent %s, want %x, %x", got["x-b3-spanid"], got["x-b3-parentspanid"], spans[3].SpanId, spans[2].SpanId)
		}
	})

	// A collector behind TLS, verified against the CA the Mesh names.
	applyListeners(t, cp, tracingMeshTLS(rcv.tlsAddr, rcv.caPEM), sidecars...)
	t.Run("grpc+tls/w3c", func(t *testing.T) {
		got, _ := tracedGet(t, url, nil)
		traceID := strings.Split(got["traceparent"], "-")[1]
		checkChain(t, waitTrace(t, rcv, traceID, 4), "", "grpc+tls")
	})

	// The exporters count what they sent: A exported its span of each
	// sampled trace above, five in all.
	eventually(t, 10*time.Second, "A's exported span count", func() error {
		m := a.adminGet(t, "/metrics")
		for _, line := range strings.Split(m, "\n") {
			if v, ok := strings.CutPrefix(line, "weft_tracing_spans_exported_total "); ok {
				if n, err := strconv.ParseFloat(v, 64); err != nil || n < 5 {
					return fmt.Errorf("weft_tracing_spans_exported_total %s", v)
				}
				return nil
			}
		}
		return fmt.Errorf("no weft_tracing_spans_exported_total in /metrics")
	})
}

// tracedGet sends a GET with headers through the chain and returns the
// propagation headers C received.
func tracedGet(t *testing.T, url string, headers map[string]string) (map[string]string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	got := map[string]string{}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&got); err != nil {
		t.Fatalf("C's answer %q: %v", body, err)
	}
	return got, res
}

// waitTrace waits for n spans of the trace and returns them parent first.
func waitTrace(t *testing.T, rcv *otlpReceiver, traceID string, n int) []receivedSpan {
	t.Helper()
	var spans []receivedSpan
	eventually(t, 15*time.Second, fmt.Sprintf("%d spans of trace %s", n, traceID), func() error {
		if spans = rcv.trace(traceID); len(spans) < n {
			return fmt.Errorf("%d spans", len(spans))
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	if spans = rcv.trace(traceID); len(spans) != n {
		t.Fatalf("trace %s has %d spans, want %d:\n%s", traceID, len(spans), n, describe(spans))
	}
	// Order by parenthood: the root (or the caller's child) first.
	byParent := map[string]receivedSpan{}
	ids := map[string]bool{}
	for _, s := range spans {
		byParent[hex.EncodeToString(s.ParentSpanId)] = s
		ids[hex.EncodeToString(s.SpanId)] = true
	}
	var first *receivedSpan
	for _, s := range spans {
		if !ids[hex.EncodeToString(s.ParentSpanId)] {
			if first != nil {
				t.Fatalf("trace %s has two roots:\n%s", traceID, describe(spans))
			}
			first = &s
		}
	}
	if first == nil {
		t.Fatalf("trace %s has no root:\n%s", traceID, describe(spans))
	}
	out := []receivedSpan{*first}
	for len(out) < n {
		next, ok := byParent[hex.EncodeToString(out[len(out)-1].SpanId)]
		if !ok {
			t.Fatalf("trace %s is not one chain:\n%s", traceID, describe(spans))
		}
		out = append(out, next)
	}
	return out
}

func describe(spans []receivedSpan) string {
	var lines []string
	for _, s := range spans {
		lines = append(lines, fmt.Sprintf("  %x parent %x %s %q via %s from %s", s.SpanId, s.ParentSpanId, s.Kind, s.Name, s.protocol, s.service))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func spanAttrs(s receivedSpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.GetAttributes() {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(v.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(v.BoolValue)
		}
	}
	return m
}

// checkChain checks the four spans of A → B → C, parent first: kinds,
// exporters, parenthood (the first span's parent is callerSpan, "" for a
// root) and the mesh's attributes.
func checkChain(t *testing.T, spans []receivedSpan, callerSpan, protocol string) {
	t.Helper()
	if got := hex.EncodeToString(spans[0].ParentSpanId); got != callerSpan {
		t.Errorf("A's span has parent %q, want %q", got, callerSpan)
	}
	want := []struct {
		kind                tracepb.Span_SpanKind
		service, src, dst   string
		cluster, srcVersion string
	}{
		{tracepb.Span_SPAN_KIND_CLIENT, "tr-a.default", "tr-a", "tr-b", "outbound|tr-b.default", "v1"},
		{tracepb.Span_SPAN_KIND_SERVER, "tr-b.default", "tr-a", "tr-b", "inbound|tr-b.default", "v1"},
		{tracepb.Span_SPAN_KIND_CLIENT, "tr-b.default", "tr-b", "tr-c", "outbound|tr-c.default", "v2"},
		{tracepb.Span_SPAN_KIND_SERVER, "tr-c.default", "tr-b", "tr-c", "inbound|tr-c.default", "v2"},
	}
	for i, w := range want {
		s := spans[i]
		a := spanAttrs(s)
		where := fmt.Sprintf("span %d (%s %q)", i, s.Kind, s.Name)
		if s.Kind != w.kind || s.service != w.service || s.protocol != protocol {
			t.Errorf("%s: kind %s from %s via %s, want %s from %s via %s", where, s.Kind, s.service, s.protocol, w.kind, w.service, protocol)
		}
		for k, v := range map[string]string{
			"weft.source.service":       w.src,
			"weft.source.namespace":     "default",
			"weft.source.version":       w.srcVersion,
			"weft.source.spiffe_id":     "spiffe://weft.local/ns/default/sa/" + w.src,
			"weft.destination.service":  w.dst,
			"weft.cluster":              w.cluster,
			"http.request.method":       "GET",
			"url.path":                  "/chain/items",
			"http.response.status_code": "200",
			"weft.mtls":                 "true",
		} {
			if a[k] != v {
				t.Errorf("%s: %s = %q, want %q", where, k, a[k], v)
			}
		}
		// The local workload's SPIFFE ID is on every span; the peer's
		// where the proxy verified it (the inbound side).
		if dst := "spiffe://weft.local/ns/default/sa/" + w.dst; w.kind == tracepb.Span_SPAN_KIND_SERVER && a["weft.destination.spiffe_id"] != dst {
			t.Errorf("%s: weft.destination.spiffe_id = %q, want %q", where, a["weft.destination.spiffe_id"], dst)
		}
		if a["weft.upstream.address"] == "" {
			t.Errorf("%s: no upstream address", where)
		}
		if ws := a["weft.source.workload"] + a["weft.destination.workload"]; !strings.Contains(ws, "@") {
			t.Errorf("%s: no workload ID of the proxy's own workload: %v", where, a)
		}
		if s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("%s: status %v", where, s.GetStatus())
		}
		if s.EndTimeUnixNano < s.StartTimeUnixNano || s.StartTimeUnixNano == 0 {
			t.Errorf("%s: times %d..%d", where, s.StartTimeUnixNano, s.EndTimeUnixNano)
		}
	}
}

// applyListeners applies doc and waits until each sidecar has acknowledged
// a new listener version (tracing lives in the connection managers).
func applyListeners(t *testing.T, cp *controlPlane, doc string, on ...*sidecar) {
	t.Helper()
	const lds = "type.googleapis.com/envoy.config.listener.v3.Listener"
	ids := map[string]string{}
	for _, s := range on {
		ids[xdsmeta.WorkloadID(s.service, "default", s.inbound)] = ""
	}
	for _, n := range cp.nodes(t) {
		if _, ok := ids[n.ID]; ok {
			ids[n.ID] = n.Versions[lds]
		}
	}
	since := time.Now()
	cp.apply(t, doc)
	eventually(t, 15*time.Second, "new listeners acknowledged", func() error {
		for _, n := range cp.nodes(t) {
			before, ok := ids[n.ID]
			if !ok {
				continue
			}
			if n.LastNACK != nil && n.LastNACK.At.After(since) {
				t.Fatalf("%s NACKed: %s", n.ID, n.LastNACK.Message)
			}
			if v := n.Versions[lds]; v == before || n.Acked[lds] != v {
				return fmt.Errorf("%s: listeners %s, acked %s", n.ID, v, n.Acked[lds])
			}
		}
		return nil
	})
}
