package trace

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

// scope names the instrumentation in every batch.
var scope = &commonpb.InstrumentationScope{Name: "weft-proxy"}

// exportMethod is the OTLP TraceService's only method. Calling it by name
// with TracesData (wire-compatible with ExportTraceServiceRequest) keeps
// the collector package and its HTTP gateway out of the proxy binary.
const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// GRPCClient exports over OTLP/gRPC.
type GRPCClient struct {
	conn *grpc.ClientConn
}

// NewGRPCClient connects lazily to the collector at addr (host:port);
// tlsConf nil means plaintext.
func NewGRPCClient(addr string, tlsConf *tls.Config, authority string) (*GRPCClient, error) {
	creds := insecure.NewCredentials()
	if tlsConf != nil {
		creds = credentials.NewTLS(tlsConf)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if authority != "" {
		opts = append(opts, grpc.WithAuthority(authority))
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("trace: otlp grpc client for %s: %w", addr, err)
	}
	return &GRPCClient{conn: conn}, nil
}

// Export sends one batch.
func (c *GRPCClient) Export(ctx context.Context, batch *tracepb.TracesData) error {
	err := c.conn.Invoke(ctx, exportMethod, batch, &emptypb.Empty{})
	if err == nil {
		return nil
	}
	err = fmt.Errorf("trace: otlp grpc export: %w", err)
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted,
		codes.Canceled, codes.OutOfRange, codes.DataLoss:
		return Retryable(err)
	}
	return err
}

// Close closes the connection.
func (c *GRPCClient) Close() error { return c.conn.Close() }

// HTTPClient exports over OTLP/HTTP with protobuf bodies.
type HTTPClient struct {
	url       string
	host      string
	transport *http.Transport
	client    *http.Client
}

// NewHTTPClient posts to url (its path is the collector's, usually
// /v1/traces) at addr, the collector's host:port; tlsConf nil means
// plaintext. The request's Host is url's.
func NewHTTPClient(url, addr string, tlsConf *tls.Config) (*HTTPClient, error) {
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		return nil, fmt.Errorf("trace: otlp http url %q: %w", url, err)
	}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	target := scheme + "://" + addr + req.URL.RequestURI()
	tr := &http.Transport{
		TLSClientConfig:     tlsConf,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   tlsConf != nil,
	}
	return &HTTPClient{url: target, host: req.URL.Host, transport: tr, client: &http.Client{Transport: tr}}, nil
}

// Export posts one batch.
func (c *HTTPClient) Export(ctx context.Context, batch *tracepb.TracesData) error {
	body, err := proto.Marshal(batch)
	if err != nil {
		return fmt.Errorf("trace: encode otlp batch: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("trace: otlp http request: %w", err)
	}
	req.Host = c.host
	req.Header.Set("Content-Type", "application/x-protobuf")
	res, err := c.client.Do(req)
	if err != nil {
		return Retryable(fmt.Errorf("trace: otlp http export: %w", err))
	}
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	res.Body.Close()
	if res.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("trace: otlp http export: %s: %q", res.Status, msg)
	switch res.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return Retryable(err)
	}
	return err
}

// Close closes idle connections.
func (c *HTTPClient) Close() error {
	c.transport.CloseIdleConnections()
	return nil
}

// Resource describes a workload for the spans' resource: service.name and
// the attributes given.
func Resource(serviceName string, attrs ...Tag) *resourcepb.Resource {
	r := &resourcepb.Resource{}
	if serviceName != "" {
		r.Attributes = append(r.Attributes, str("service.name", serviceName))
	}
	for _, a := range attrs {
		r.Attributes = append(r.Attributes, str(a.Key, a.Value))
	}
	return r
}

var (
	_ Client = (*GRPCClient)(nil)
	_ Client = (*HTTPClient)(nil)
	_ Sink   = (*Exporter)(nil)
)
