package runtime

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/url"
	"sync"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/prometheus/client_golang/prometheus"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/trace"
)

// tracingObserver compiles a connection manager's tracing: the
// OpenTelemetry tracer, its collector's cluster, sampling and literal tags.
func (b *builder) tracingObserver(t *hcmv3.HttpConnectionManager_Tracing, direction, path string) (observe.Observer, error) {
	if t == nil {
		return nil, nil
	}
	ppath := join(path, "provider")
	prov := t.GetProvider()
	if prov == nil {
		return nil, pathErr(ppath, "a provider is required (only %s is supported)", xdsmeta.TracingProvider)
	}
	otel := &tracev3.OpenTelemetryConfig{}
	if err := unpackAny(prov.GetTypedConfig(), otel, join(ppath, "typed_config")); err != nil {
		return nil, wrapPath(ppath, err)
	}
	spec, err := b.collector(otel, join(ppath, "typed_config("+fullName(otel)+")"))
	if err != nil {
		return nil, err
	}
	var sink trace.Sink
	if spec.addr == "" {
		// The collector's cluster has not arrived (yet): a cross-reference
		// is not an error. Spans are recorded, propagated and dropped.
		sink = b.rt.tracing.missing(b.rt.opts.Metrics)
	} else if sink, err = b.rt.tracing.exporter(spec, b.rt.log, b.rt.opts.Metrics); err != nil {
		return nil, wrapPath(ppath, err)
	}
	sampling := 100.0 // Envoy's default random_sampling
	if rs := t.GetRandomSampling(); rs != nil {
		sampling = rs.GetValue()
	}
	var tags []trace.Tag
	for i, ct := range t.GetCustomTags() {
		lit := ct.GetLiteral()
		if lit == nil {
			return nil, pathErr(fmt.Sprintf("%s.custom_tags[%d]", path, i), "only literal tags are supported")
		}
		tags = append(tags, trace.Tag{Key: ct.GetTag(), Value: lit.GetValue()})
	}
	return trace.NewObserver(trace.ObserverConfig{
		Direction: observe.Direction(direction), Sampling: sampling, Tags: tags, Sink: sink,
	}), nil
}

// collectorSpec is what an exporter is built from; equal specs share one.
type collectorSpec struct {
	protocol    string // "grpc" or "http"
	addr        string // host:port
	url         string // http: where spans are posted
	authority   string // grpc: the :authority
	tls         bool
	ca, sni     string
	serviceName string
}

// collector resolves the OpenTelemetry config's collector: its STATIC
// cluster's one endpoint and, from the cluster's metadata, its TLS.
func (b *builder) collector(otel *tracev3.OpenTelemetryConfig, path string) (collectorSpec, error) {
	spec := collectorSpec{serviceName: otel.GetServiceName()}
	var clusterName, cpath string
	switch {
	case otel.GetGrpcService() != nil && otel.GetHttpService() != nil:
		return spec, pathErr(path, "only one of grpc_service and http_service may be set")
	case otel.GetGrpcService() != nil:
		g := otel.GetGrpcService().GetEnvoyGrpc()
		if g == nil {
			return spec, pathErr(join(path, "grpc_service"), "envoy_grpc is required")
		}
		spec.protocol, spec.authority = "grpc", g.GetAuthority()
		clusterName, cpath = g.GetClusterName(), join(path, "grpc_service.envoy_grpc.cluster_name")
	case otel.GetHttpService() != nil:
		uri := otel.GetHttpService().GetHttpUri()
		u, err := url.Parse(uri.GetUri())
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return spec, pathErr(join(path, "http_service.http_uri.uri"), "%q is not an http(s) URL", uri.GetUri())
		}
		spec.protocol, spec.url = "http", uri.GetUri()
		clusterName, cpath = uri.GetCluster(), join(path, "http_service.http_uri.cluster")
	default:
		return spec, pathErr(path, "grpc_service or http_service is required: spans must go somewhere")
	}
	if clusterName == "" {
		return spec, pathErr(cpath, "a cluster is required")
	}
	c := b.next.res.Clusters[clusterName]
	if c == nil {
		return spec, nil
	}
	eps := c.GetLoadAssignment().GetEndpoints()
	if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
		return spec, pathErr(cpath, "cluster %q must be STATIC with exactly one endpoint", clusterName)
	}
	addr, err := socketAddress(eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress(), "address", false)
	if err != nil {
		return spec, pathErr(cpath, "cluster %q: %v", clusterName, err)
	}
	spec.addr = addr
	if c.GetTransportSocket() != nil {
		return spec, pathErr(cpath, "cluster %q: a collector's TLS is set in its metadata (%s), not a transport socket", clusterName, xdsmeta.TracingCAKey)
	}
	md := c.GetMetadata().GetFilterMetadata()[xdsmeta.MetadataNamespace].GetFields()
	if md[xdsmeta.TracingTLSKey].GetBoolValue() {
		spec.tls, spec.ca, spec.sni = true, md[xdsmeta.TracingCAKey].GetStringValue(), md[xdsmeta.TracingSNIKey].GetStringValue()
		if _, err := spec.tlsConfig(); err != nil {
			return spec, pathErr(cpath, "cluster %q: %v", clusterName, err)
		}
	}
	return spec, nil
}

func (s collectorSpec) tlsConfig() (*tls.Config, error) {
	if !s.tls {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.sni}
	if s.ca != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(s.ca)) {
			return nil, fmt.Errorf("metadata %s holds no PEM certificate", xdsmeta.TracingCAKey)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// tracingExporters owns the runtime's span exporters: one per collector,
// kept across configurations that keep it and closed, with its goroutine,
// when a configuration without it is applied or the runtime closes.
// Apply, which builds and settles, is serialised by Runtime.mu.
type tracingExporters struct {
	mu       sync.Mutex
	live     map[collectorSpec]*trace.Exporter
	fresh    map[collectorSpec]bool // made by the build in progress
	used     map[collectorSpec]bool // used by the build in progress
	counters *tracingCounters
	closers  sync.WaitGroup
}

// tracingCounters count the spans of every exporter of a runtime.
type tracingCounters struct {
	exported, dropped, failed prometheus.Counter
}

func newTracingCounters(reg prometheus.Registerer) *tracingCounters {
	mk := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		if reg == nil {
			return c
		}
		if err := reg.Register(c); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				if existing, ok := are.ExistingCollector.(prometheus.Counter); ok {
					return existing
				}
			}
		}
		return c
	}
	return &tracingCounters{
		exported: mk("weft_tracing_spans_exported_total", "Spans the OTLP collector accepted."),
		dropped:  mk("weft_tracing_spans_dropped_total", "Spans dropped because the export queue was full or the collector's cluster is unknown."),
		failed:   mk("weft_tracing_spans_failed_total", "Spans dropped because their export failed after retries."),
	}
}

// missing is the sink of a tracer whose collector's cluster is unknown:
// it drops and counts.
func (e *tracingExporters) missing(reg prometheus.Registerer) trace.Sink {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counters == nil {
		e.counters = newTracingCounters(reg)
	}
	return dropSink{e.counters.dropped}
}

type dropSink struct{ dropped prometheus.Counter }

func (d dropSink) Enqueue(*tracepb.Span) bool {
	d.dropped.Inc()
	return false
}

// exporter returns the exporter of spec, starting it if none runs.
func (e *tracingExporters) exporter(spec collectorSpec, log *slog.Logger, reg prometheus.Registerer) (*trace.Exporter, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.used == nil {
		e.used, e.fresh = map[collectorSpec]bool{}, map[collectorSpec]bool{}
	}
	e.used[spec] = true
	if x := e.live[spec]; x != nil {
		return x, nil
	}
	tlsConf, err := spec.tlsConfig()
	if err != nil {
		return nil, err
	}
	var client trace.Client
	if spec.protocol == "grpc" {
		client, err = trace.NewGRPCClient(spec.addr, tlsConf, spec.authority)
	} else {
		client, err = trace.NewHTTPClient(spec.url, spec.addr, tlsConf)
	}
	if err != nil {
		return nil, err
	}
	if e.counters == nil {
		e.counters = newTracingCounters(reg)
	}
	if e.live == nil {
		e.live = map[collectorSpec]*trace.Exporter{}
	}
	x := trace.NewExporter(trace.ExporterConfig{
		Client:   client,
		Resource: trace.Resource(spec.serviceName),
		Exported: e.counters.exported, Dropped: e.counters.dropped, Failed: e.counters.failed,
		Log: log.With("component", "trace", "collector", spec.addr),
	})
	e.live[spec], e.fresh[spec] = x, true
	return x, nil
}

// settle ends a build: when its configuration was applied, exporters it
// made start and those it does not use are closed; when it was not, those
// it made are closed. An exporter's goroutine runs only once its
// configuration is in service.
func (e *tracingExporters) settle(applied bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for spec, x := range e.live {
		switch {
		case applied && !e.used[spec] || !applied && e.fresh[spec]:
			delete(e.live, spec)
			e.close(x)
		case e.fresh[spec]:
			x.Start()
		}
	}
	e.used, e.fresh = nil, nil
}

// close stops x in the background: its last flush must not hold up Apply.
func (e *tracingExporters) close(x *trace.Exporter) {
	e.closers.Add(1)
	go func() {
		defer e.closers.Done()
		_ = x.Close()
	}()
}

// closeAll stops every exporter and waits for them.
func (e *tracingExporters) closeAll() {
	e.mu.Lock()
	for spec, x := range e.live {
		delete(e.live, spec)
		e.close(x)
	}
	e.mu.Unlock()
	e.closers.Wait()
}
