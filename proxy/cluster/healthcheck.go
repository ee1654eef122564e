package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// HealthCheck is a cluster's active health check, with the semantics of
// Envoy's health_checks[0]: each endpoint is checked every Interval (plus up
// to Jitter), over the cluster's own TLS; it leaves the picker after
// UnhealthyThreshold failed checks in a row, at once when it answers
// definitely (an unexpected HTTP status, a gRPC status other than SERVING),
// and returns after HealthyThreshold successful ones. An endpoint's first
// check decides at once, the way Envoy's first round does while a cluster
// warms.
type HealthCheck struct {
	Interval, Jitter, Timeout time.Duration
	// NoTrafficInterval replaces Interval while the cluster has seen no
	// request (Envoy's default: 60 s).
	NoTrafficInterval                    time.Duration
	HealthyThreshold, UnhealthyThreshold uint32
	// Exactly one of HTTP and GRPC is set.
	HTTP *HTTPHealthCheck
	GRPC *GRPCHealthCheck
	// Authority is the Host header (HTTP) or :authority (gRPC); empty
	// means the endpoint's address.
	Authority string
}

// HTTPHealthCheck is a GET of Path answered with an expected status.
type HTTPHealthCheck struct {
	Path string
	// Expected are [start, end) status ranges; empty means 200 only.
	Expected [][2]int
	// Protocol is the codec: HTTP1 or HTTP2.
	Protocol Protocol
}

// GRPCHealthCheck is a grpc.health.v1.Health/Check of Service over HTTP/2.
type GRPCHealthCheck struct {
	Service string
}

// hcState is an endpoint's active health, in its hostStats.
type hcState struct {
	failed atomic.Bool
	// Owned by the endpoint's checker goroutine.
	checked          bool
	successes, fails uint32
}

// errUnhealthy is a definite answer that the endpoint is unhealthy.
var errUnhealthy = errors.New("unhealthy")

// healthChecker runs one goroutine per endpoint of the serving cluster.
type healthChecker struct {
	cfg    HealthCheck
	pool   *Pool
	client *http.Client

	mu      sync.Mutex
	running map[*hostStats]context.CancelFunc
	closed  bool
	wg      sync.WaitGroup
}

func newHealthChecker(cfg HealthCheck, p *Pool) *healthChecker {
	proto := HTTP2
	if cfg.HTTP != nil {
		proto = cfg.HTTP.Protocol
	}
	t := &http.Transport{
		DisableCompression:  true,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     2*cfg.Interval + time.Minute,
		Protocols:           new(http.Protocols),
	}
	dialer := &net.Dialer{Timeout: p.settings.ConnectTimeout}
	if s := p.settings.TLS; s != nil {
		tc := s.Clone()
		if proto == HTTP2 {
			tc.NextProtos = []string{"h2"}
			t.Protocols.SetHTTP2(true)
		} else {
			tc.NextProtos = []string{"http/1.1"}
			t.Protocols.SetHTTP1(true)
		}
		t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c := tls.Client(raw, tc)
			if err := c.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return c, nil
		}
	} else {
		t.DialContext = dialer.DialContext
		if proto == HTTP2 {
			t.Protocols.SetUnencryptedHTTP2(true)
		} else {
			t.Protocols.SetHTTP1(true)
		}
	}
	return &healthChecker{cfg: cfg, pool: p, client: &http.Client{Transport: t}, running: map[*hostStats]context.CancelFunc{}}
}

// reconcile checks exactly the endpoints of c.
func (h *healthChecker) reconcile(c *Cluster) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	want := make(map[*hostStats]*Endpoint, len(c.endpoints))
	for _, e := range c.endpoints {
		want[e.host] = e
	}
	for host, cancel := range h.running {
		if _, ok := want[host]; !ok {
			cancel()
			delete(h.running, host)
		}
	}
	for host, e := range want {
		if _, ok := h.running[host]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		h.running[host] = cancel
		h.wg.Add(1)
		go h.loop(ctx, e.addr, host)
	}
}

func (h *healthChecker) close() {
	h.mu.Lock()
	h.closed = true
	for host, cancel := range h.running {
		cancel()
		delete(h.running, host)
	}
	h.mu.Unlock()
	h.wg.Wait()
	h.client.CloseIdleConnections()
}

func (h *healthChecker) loop(ctx context.Context, addr string, host *hostStats) {
	defer h.wg.Done()
	// Checks of many endpoints spread over the first interval.
	wait := time.Duration(rand.Int64N(int64(h.cfg.Interval)/10 + 1))
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := h.check(ctx, addr)
		if ctx.Err() != nil {
			return
		}
		if h.record(host, err) {
			h.pool.rebuild()
		}
		wait = h.cfg.Interval
		if !h.pool.sawTraffic.Load() && h.cfg.NoTrafficInterval > 0 {
			wait = h.cfg.NoTrafficInterval
		}
		if h.cfg.Jitter > 0 {
			wait += time.Duration(rand.Int64N(int64(h.cfg.Jitter)))
		}
	}
}

// record applies a check's result; it reports whether the endpoint's
// health changed.
func (h *healthChecker) record(host *hostStats, err error) bool {
	s := &host.hc
	failed := s.failed.Load()
	first := !s.checked
	s.checked = true
	if err == nil {
		s.fails = 0
		s.successes++
		if failed && (first || s.successes >= max(h.cfg.HealthyThreshold, 1)) {
			s.failed.Store(false)
			return true
		}
		return false
	}
	s.successes = 0
	s.fails++
	if !failed && (first || errors.Is(err, errUnhealthy) || s.fails >= max(h.cfg.UnhealthyThreshold, 1)) {
		s.failed.Store(true)
		return true
	}
	return false
}

func (h *healthChecker) check(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	if h.cfg.GRPC != nil {
		return h.checkGRPC(ctx, addr)
	}
	return h.checkHTTP(ctx, addr)
}

func (h *healthChecker) url(addr, path string) string {
	return h.pool.scheme + "://" + addr + path
}

func (h *healthChecker) checkHTTP(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url(addr, h.cfg.HTTP.Path), nil)
	if err != nil {
		return err
	}
	req.Host = h.cfg.Authority
	req.Header.Set("User-Agent", "weft-health-check")
	res, err := h.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if !expected(res.StatusCode, h.cfg.HTTP.Expected) {
		return fmt.Errorf("%w: status %d", errUnhealthy, res.StatusCode)
	}
	return nil
}

func expected(code int, ranges [][2]int) bool {
	if len(ranges) == 0 {
		return code == http.StatusOK
	}
	for _, r := range ranges {
		if code >= r[0] && code < r[1] {
			return true
		}
	}
	return false
}

func (h *healthChecker) checkGRPC(ctx context.Context, addr string) error {
	msg, err := proto.Marshal(&healthpb.HealthCheckRequest{Service: h.cfg.GRPC.Service})
	if err != nil {
		return err
	}
	body := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(body[1:5], uint32(len(msg)))
	copy(body[5:], msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url(addr, "/grpc.health.v1.Health/Check"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Host = h.cfg.Authority
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	res, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: HTTP status %d", errUnhealthy, res.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return err
	}
	st := res.Trailer.Get("Grpc-Status")
	if st == "" {
		st = res.Header.Get("Grpc-Status") // trailers-only answer
	}
	if st != "0" {
		return fmt.Errorf("%w: grpc-status %s %s", errUnhealthy, st, res.Trailer.Get("Grpc-Message"))
	}
	if len(data) < 5 || data[0] != 0 || int(binary.BigEndian.Uint32(data[1:5])) != len(data)-5 {
		return fmt.Errorf("%w: malformed gRPC answer", errUnhealthy)
	}
	var hr healthpb.HealthCheckResponse
	if err := proto.Unmarshal(data[5:], &hr); err != nil {
		return fmt.Errorf("%w: %v", errUnhealthy, err)
	}
	if hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%w: %v", errUnhealthy, hr.GetStatus())
	}
	return nil
}
