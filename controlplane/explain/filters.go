package explain

import (
	"fmt"
	"strings"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/translate"

	// The HTTP filters an explanation runs, as the proxy links them in.
	_ "github.com/weftmesh/weft/proxy/filter/fault"
	_ "github.com/weftmesh/weft/proxy/filter/jwt"
	_ "github.com/weftmesh/weft/proxy/filter/localratelimit"
	_ "github.com/weftmesh/weft/proxy/filter/ratelimit"
	_ "github.com/weftmesh/weft/proxy/filter/rbac"
)

// Filters an explanation describes instead of running: rate limits depend
// on traffic an explanation has not seen (a fresh local bucket would always
// admit, and asking the global service would spend a real quota).
const (
	filterLocalRateLimit = "envoy.filters.http.local_ratelimit"
	filterRateLimit      = "envoy.filters.http.ratelimit"
)

// describeLimit says which limit of the destination's RateLimit counts the
// request: the inbound route it matched bears the limit's name.
func describeLimit(in *translate.Input, to translate.ServiceKey, routeName, filterName string) string {
	spec := in.RateLimits[to]
	if spec == nil {
		return "no RateLimit applies"
	}
	for _, l := range spec.Limits {
		if l.Name != routeName {
			continue
		}
		per := ""
		if l.PerSource {
			per = " per calling identity"
		}
		switch {
		case filterName == filterLocalRateLimit && l.Local != nil:
			return fmt.Sprintf("limit %q: %d requests per %s in each proxy%s (burst %d); over it: 429", l.Name, l.Local.Requests, l.Local.Unit, per, burst(l.Local))
		case filterName == filterRateLimit && l.Global != nil:
			return fmt.Sprintf("limit %q: %d requests per %s for all instances together%s, counted by the control plane (failure mode %s); over it: 429",
				l.Name, l.Global.Requests, l.Global.Unit, per, strings.ToLower(string(spec.FailureMode)))
		}
		return fmt.Sprintf("limit %q has no %s part", l.Name, kindOf(filterName))
	}
	return "no limit of the RateLimit matches this request"
}

func burst(l *v1alpha1.LocalLimit) uint32 {
	if l.Burst == 0 {
		return l.Requests
	}
	return l.Burst
}

func kindOf(filterName string) string {
	if filterName == filterLocalRateLimit {
		return "local"
	}
	return "global"
}
