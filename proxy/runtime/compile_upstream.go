package runtime

import (
	"fmt"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/lb"
)

// circuitBreakers compiles the default priority's thresholds (nil means
// Envoy's defaults) and its max_connections (zero: unbounded). Routes carry
// no priority here, so a HIGH threshold could never apply and is refused
// rather than ignored.
func circuitBreakers(cb *clusterv3.CircuitBreakers) (*cluster.Thresholds, int64, error) {
	if cb == nil {
		return nil, 0, nil
	}
	var maxConns int64
	t := cluster.DefaultThresholds()
	seen := false
	for i, th := range cb.GetThresholds() {
		path := fmt.Sprintf("circuit_breakers.thresholds[%d]", i)
		if th.GetPriority() != corev3.RoutingPriority_DEFAULT {
			return nil, 0, pathErr(join(path, "priority"), "%v is not supported (only DEFAULT)", th.GetPriority())
		}
		if seen {
			return nil, 0, pathErr(path, "a second DEFAULT threshold")
		}
		if v := th.GetMaxConnections(); v != nil {
			if v.GetValue() == 0 {
				return nil, 0, pathErr(join(path, "max_connections"), "0 would refuse every connection")
			}
			maxConns = int64(v.GetValue())
		}
		if v := th.GetMaxPendingRequests(); v != nil {
			t.MaxPendingRequests, t.LimitPending = int64(v.GetValue()), true
		}
		seen = true
		if v := th.GetMaxRequests(); v != nil {
			t.MaxRequests = int64(v.GetValue())
		}
		if v := th.GetMaxRetries(); v != nil {
			t.MaxRetries = int64(v.GetValue())
		}
		if rb := th.GetRetryBudget(); rb != nil {
			// Envoy's defaults: 20% of active requests, at least 3.
			bud := &cluster.RetryBudget{Percent: cluster.DefaultRetryBudgetPercent, MinConcurrency: cluster.DefaultMinRetryConcurrency}
			if p := rb.GetBudgetPercent(); p != nil {
				bud.Percent = p.GetValue()
			}
			if m := rb.GetMinRetryConcurrency(); m != nil {
				bud.MinConcurrency = int64(m.GetValue())
			}
			t.Budget = bud
		}
	}
	return &t, maxConns, nil
}

// configureBalancer hands a balancer the settings of its lb_policy. A
// config for another policy than the cluster's is refused, as Envoy would
// silently ignore it.
func configureBalancer(c *clusterv3.Cluster, b lb.Builder) (lb.Builder, error) {
	var cfg lb.Config
	path := ""
	switch lc := c.GetLbConfig().(type) {
	case nil:
		return b, nil
	case *clusterv3.Cluster_LeastRequestLbConfig_:
		path = "least_request_lb_config"
		if c.GetLbPolicy() != clusterv3.Cluster_LEAST_REQUEST {
			return nil, pathErr(path, "set for lb_policy %v", c.GetLbPolicy())
		}
		if v := lc.LeastRequestLbConfig.GetChoiceCount(); v != nil {
			cfg.ChoiceCount = int(v.GetValue())
		}
	case *clusterv3.Cluster_RingHashLbConfig_:
		path = "ring_hash_lb_config"
		if c.GetLbPolicy() != clusterv3.Cluster_RING_HASH {
			return nil, pathErr(path, "set for lb_policy %v", c.GetLbPolicy())
		}
		rh := lc.RingHashLbConfig
		if rh.GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
			return nil, pathErr(join(path, "hash_function"), "%v is not supported (only XX_HASH)", rh.GetHashFunction())
		}
		cfg.MinRingSize = rh.GetMinimumRingSize().GetValue()
		cfg.MaxRingSize = rh.GetMaximumRingSize().GetValue()
	default:
		return nil, pathErr("lb_config", "%T is not supported", lc)
	}
	conf, ok := b.(lb.Configurable)
	if !ok {
		return nil, pathErr(path, "the balancer takes no configuration")
	}
	nb, err := conf.WithConfig(cfg)
	if err != nil {
		return nil, pathErr(path, "%w", err)
	}
	return nb, nil
}

// outlierDetection compiles the consecutive-error detectors of
// outlier_detection, with Envoy's defaults for every field left unset.
func outlierDetection(od *clusterv3.OutlierDetection) (*cluster.OutlierDetection, error) {
	o := cluster.DefaultOutlierDetection()
	u32 := func(v *wrapperspb.UInt32Value, dst *uint32) {
		if v != nil {
			*dst = v.GetValue()
		}
	}
	u32(od.GetConsecutive_5Xx(), &o.Consecutive5xx)
	u32(od.GetConsecutiveGatewayFailure(), &o.ConsecutiveGatewayFailure)
	u32(od.GetConsecutiveLocalOriginFailure(), &o.ConsecutiveLocalOriginFailure)
	u32(od.GetMaxEjectionPercent(), &o.MaxEjectionPercent)
	u32(od.GetEnforcingConsecutive_5Xx(), &o.Enforcing5xx)
	u32(od.GetEnforcingConsecutiveGatewayFailure(), &o.EnforcingGatewayFailure)
	u32(od.GetEnforcingConsecutiveLocalOriginFailure(), &o.EnforcingLocalOriginFailure)
	o.SplitExternalLocalOriginErrors = od.GetSplitExternalLocalOriginErrors()
	if d := od.GetInterval(); d != nil {
		if d.AsDuration() <= 0 {
			return nil, pathErr("outlier_detection.interval", "must be positive")
		}
		o.Interval = d.AsDuration()
	}
	if d := od.GetBaseEjectionTime(); d != nil {
		o.BaseEjectionTime = d.AsDuration()
	}
	if d := od.GetMaxEjectionTime(); d != nil {
		o.MaxEjectionTime = d.AsDuration()
	}
	if o.MaxEjectionTime < o.BaseEjectionTime {
		// Envoy refuses this too.
		return nil, pathErr("outlier_detection.max_ejection_time", "%v is below base_ejection_time %v", o.MaxEjectionTime, o.BaseEjectionTime)
	}
	return &o, nil
}

// Envoy's default no_traffic_interval.
const defaultNoTrafficInterval = 60 * time.Second

// healthCheck compiles health_checks[0], HTTP or gRPC. The authority
// defaults to the cluster's name, as in Envoy, unless the name cannot be
// one (a mesh cluster's "outbound|svc.ns" is refused by HTTP/2): then the
// endpoint's address is used.
func healthCheck(clusterName string, hcs []*corev3.HealthCheck) (*cluster.HealthCheck, error) {
	if len(hcs) > 1 {
		return nil, pathErr("health_checks[1]", "only one health check is supported")
	}
	const path = "health_checks[0]"
	h := hcs[0]
	hc := &cluster.HealthCheck{
		Interval: h.GetInterval().AsDuration(), Jitter: h.GetIntervalJitter().AsDuration(),
		Timeout: h.GetTimeout().AsDuration(), NoTrafficInterval: defaultNoTrafficInterval,
		HealthyThreshold: h.GetHealthyThreshold().GetValue(), UnhealthyThreshold: h.GetUnhealthyThreshold().GetValue(),
	}
	if validAuthority(clusterName) {
		hc.Authority = clusterName
	}
	if d := h.GetNoTrafficInterval(); d != nil {
		hc.NoTrafficInterval = d.AsDuration()
	}
	if hc.Interval <= 0 || hc.Timeout <= 0 {
		return nil, pathErr(path, "interval and timeout must be positive")
	}
	switch {
	case h.GetHttpHealthCheck() != nil:
		hh := h.GetHttpHealthCheck()
		p := join(path, "http_health_check")
		if hh.GetHost() != "" {
			hc.Authority = hh.GetHost()
		}
		hc.HTTP = &cluster.HTTPHealthCheck{Path: hh.GetPath(), Protocol: cluster.HTTP1}
		switch hh.GetCodecClientType() {
		case typev3.CodecClientType_HTTP1:
		case typev3.CodecClientType_HTTP2:
			hc.HTTP.Protocol = cluster.HTTP2
		default:
			return nil, pathErr(join(p, "codec_client_type"), "%v is not supported", hh.GetCodecClientType())
		}
		for i, r := range hh.GetExpectedStatuses() {
			if r.GetStart() < 100 || r.GetEnd() > 600 || r.GetStart() >= r.GetEnd() {
				return nil, pathErr(fmt.Sprintf("%s.expected_statuses[%d]", p, i), "[%d, %d) is not a range of HTTP statuses", r.GetStart(), r.GetEnd())
			}
			hc.HTTP.Expected = append(hc.HTTP.Expected, [2]int{int(r.GetStart()), int(r.GetEnd())})
		}
	case h.GetGrpcHealthCheck() != nil:
		gh := h.GetGrpcHealthCheck()
		if gh.GetAuthority() != "" {
			hc.Authority = gh.GetAuthority()
		}
		hc.GRPC = &cluster.GRPCHealthCheck{Service: gh.GetServiceName()}
	default:
		return nil, pathErr(path, "an http_health_check or a grpc_health_check is required")
	}
	return hc, nil
}

// validAuthority reports whether s can be sent as a Host or :authority.
func validAuthority(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		case strings.ContainsRune("-._~:[]", r):
		default:
			return false
		}
	}
	return true
}
