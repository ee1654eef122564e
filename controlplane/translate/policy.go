package translate

// A DestinationPolicy becomes settings of its service's clusters and of
// each subset's: balancer, connection limits, outlier detection, health
// checks; and subsets select workloads by their labels.

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// applyPolicy sets on a cluster of key (the service's or a subset's) what
// its DestinationPolicy and the retry budgets of the Routes to it ask.
func (t *translation) applyPolicy(c *clusterv3.Cluster, key ServiceKey) {
	p := t.in.Policies[key]
	budget := t.in.retryBudget(c.GetName())
	if p == nil && budget == nil {
		return
	}
	var th *clusterv3.CircuitBreakers_Thresholds
	threshold := func() *clusterv3.CircuitBreakers_Thresholds {
		if th == nil {
			th = &clusterv3.CircuitBreakers_Thresholds{}
			c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
		}
		return th
	}
	if p != nil {
		switch lb := p.LoadBalancer; lb.Type {
		case v1alpha1.LoadBalancerLeastRequest:
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
			if lb.LeastRequest != nil {
				c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
					ChoiceCount: wrapperspb.UInt32(uint32(lb.LeastRequest.ChoiceCount)),
				}}
			}
		case v1alpha1.LoadBalancerRandom:
			c.LbPolicy = clusterv3.Cluster_RANDOM
		case v1alpha1.LoadBalancerRingHash:
			c.LbPolicy = clusterv3.Cluster_RING_HASH
			if lb.RingHash != nil {
				c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
					MinimumRingSize: wrapperspb.UInt64(uint64(lb.RingHash.MinimumRingSize)),
				}}
			}
		default:
			c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		}
		if l := p.ConnectionLimits; l != nil {
			th := threshold()
			th.MaxConnections = u32(l.MaxConnections)
			th.MaxPendingRequests = u32(l.MaxPendingRequests)
			th.MaxRequests = u32(l.MaxRequests)
			th.MaxRetries = u32(l.MaxRetries)
		}
		if o := p.OutlierDetection; o != nil {
			od := &clusterv3.OutlierDetection{
				Interval:           durationpb.New(o.Interval.Duration),
				BaseEjectionTime:   durationpb.New(o.BaseEjectionTime.Duration),
				MaxEjectionPercent: wrapperspb.UInt32(uint32(o.MaxEjectionPercent)),
			}
			// Envoy's defaults differ from the API's: consecutive 5xx is on
			// (5) unless its enforcement is 0, and consecutive gateway
			// failures never eject unless their enforcement is set.
			if o.Consecutive5xx > 0 {
				od.Consecutive_5Xx = wrapperspb.UInt32(uint32(o.Consecutive5xx))
			} else {
				od.EnforcingConsecutive_5Xx = wrapperspb.UInt32(0)
			}
			if o.ConsecutiveGatewayErrors > 0 {
				od.ConsecutiveGatewayFailure = wrapperspb.UInt32(uint32(o.ConsecutiveGatewayErrors))
				od.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
			}
			if o.ConsecutiveLocalOriginFailures > 0 {
				od.ConsecutiveLocalOriginFailure = wrapperspb.UInt32(uint32(o.ConsecutiveLocalOriginFailures))
				od.SplitExternalLocalOriginErrors = true
			}
			c.OutlierDetection = od
		}
		if h := p.HealthCheck; h != nil {
			hc := &corev3.HealthCheck{
				Timeout:  durationpb.New(h.Timeout.Duration),
				Interval: durationpb.New(h.Interval.Duration),
				// The API's interval holds whether or not the cluster has
				// seen traffic (Envoy's no_traffic_interval defaults to 60s).
				NoTrafficInterval:  durationpb.New(h.Interval.Duration),
				HealthyThreshold:   wrapperspb.UInt32(uint32(h.HealthyThreshold)),
				UnhealthyThreshold: wrapperspb.UInt32(uint32(h.UnhealthyThreshold)),
			}
			if h.HTTP != nil {
				hh := &corev3.HealthCheck_HttpHealthCheck{Path: h.HTTP.Path}
				for _, s := range h.HTTP.ExpectedStatuses {
					hh.ExpectedStatuses = append(hh.ExpectedStatuses, &typev3.Int64Range{Start: int64(s), End: int64(s) + 1})
				}
				hc.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: hh}
			} else if h.GRPC != nil {
				hc.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{
					ServiceName: h.GRPC.ServiceName,
				}}
			}
			c.HealthChecks = []*corev3.HealthCheck{hc}
		}
	}
	if budget != nil {
		threshold().RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent:       &typev3.Percent{Value: budget.Percent},
			MinRetryConcurrency: wrapperspb.UInt32(uint32(budget.MinRetryConcurrency)),
		}
	}
}

func u32(v *int32) *wrapperspb.UInt32Value {
	if v == nil {
		return nil
	}
	return wrapperspb.UInt32(uint32(*v))
}

// subsetsOf lists the subsets the DestinationPolicy of key defines.
func (in *Input) subsetsOf(key ServiceKey) []v1alpha1.Subset {
	if p := in.Policies[key]; p != nil {
		return p.Subsets
	}
	return nil
}

// inSubset reports whether a workload's labels, with its version as the
// label "version", include all of labels.
func inSubset(wl map[string]string, version string, labels map[string]string) bool {
	for k, v := range labels {
		got, ok := wl[k]
		if !ok && k == "version" {
			got, ok = version, true
		}
		if !ok || got != v {
			return false
		}
	}
	return true
}
