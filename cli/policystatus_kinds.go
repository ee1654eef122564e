package cli

import (
	"strconv"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// RequestAuth and RateLimit show their policy status as AccessPolicy does.
func init() {
	policyKinds[v1alpha1.RequestAuthKind.Name] = true
	policyKinds[v1alpha1.RateLimitKind.Name] = true
	kindColumns[v1alpha1.RateLimitKind.Name] = struct {
		headers []string
		row     func(*v1alpha1.Object) []string
	}{
		headers: []string{"LIMITS", "FAILURE-MODE"},
		row: func(o *v1alpha1.Object) []string {
			s, ok := o.Spec.(*v1alpha1.RateLimitSpec)
			if !ok {
				return []string{"", ""}
			}
			return []string{strconv.Itoa(len(s.Limits)), orDash(string(s.FailureMode))}
		},
	}
}
