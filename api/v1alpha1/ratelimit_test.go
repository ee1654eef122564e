package v1alpha1

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRateLimitKind(t *testing.T) {
	for _, name := range []string{"RateLimit", "ratelimits", "rl"} {
		if k, ok := Lookup(name); !ok || k.Name != "RateLimit" || !k.Namespaced {
			t.Errorf("Lookup(%q) = %+v, %v; want the namespaced kind RateLimit", name, k, ok)
		}
	}
}

func TestRateLimitSpecDefault(t *testing.T) {
	spec := RateLimitSpec{Limits: []Limit{
		{Name: "a", Local: &LocalLimit{Requests: 10, Unit: UnitSecond}},
		{Name: "b", Local: &LocalLimit{Requests: 10, Unit: UnitSecond, Burst: 3}, Global: &GlobalLimit{Requests: 5, Unit: UnitMinute}},
	}}
	want := RateLimitSpec{
		FailureMode: FailureModeOpen,
		Timeout:     &Duration{100 * time.Millisecond},
		Limits: []Limit{
			{Name: "a", Local: &LocalLimit{Requests: 10, Unit: UnitSecond, Burst: 10}},
			{Name: "b", Local: &LocalLimit{Requests: 10, Unit: UnitSecond, Burst: 3}, Global: &GlobalLimit{Requests: 5, Unit: UnitMinute}},
		},
	}
	for range 2 { // Default is idempotent
		spec.Default()
		if !reflect.DeepEqual(spec, want) {
			t.Fatalf("after Default:\n got %s\nwant %s", mustJSON(t, spec), mustJSON(t, want))
		}
	}
}

func TestRateLimitSpecValidate(t *testing.T) {
	local := &LocalLimit{Requests: 1, Unit: UnitSecond, Burst: 1}
	global := &GlobalLimit{Requests: 1, Unit: UnitMinute}
	get := []RouteMatch{{Method: "GET"}}
	tests := []struct {
		name string
		spec RateLimitSpec
		want []string
	}{
		{
			name: "everything",
			spec: RateLimitSpec{FailureMode: FailureModeClosed, Timeout: &Duration{10 * time.Second}, Limits: []Limit{
				{Name: "search", Match: []RouteMatch{{Path: &PathMatch{Prefix: "/search"}}, {Method: "POST"}}, PerSource: true, Local: local, Global: global},
				{Name: "checkout", RouteRule: "checkout", Global: &GlobalLimit{Requests: maxRateLimitRequests, Unit: UnitSecond}},
				{Name: "rest", Local: &LocalLimit{Requests: 1, Unit: UnitHour, Burst: maxRateLimitRequests}},
			}},
		},
		{name: "no limits", want: []string{`spec.limits: at least one limit is required`}},
		{
			name: "names",
			spec: RateLimitSpec{Limits: []Limit{
				{Match: get, Local: local},
				{Name: "Search", Match: get, Local: local},
				{Name: "a", Match: get, Local: local},
				{Name: "a", Local: local},
			}},
			want: []string{
				`spec.limits[0].name: is required`,
				`spec.limits[1].name: "Search" is not a valid limit name: use ` + dnsLabelRule,
				`spec.limits[3].name: duplicate limit name "a": spec.limits[2] has it too`,
			},
		},
		{
			name: "shadowed by a limit without match",
			spec: RateLimitSpec{Limits: []Limit{{Name: "all", Local: local}, {Name: "get", Match: get, Local: local}}},
			want: []string{`spec.limits[1]: is shadowed by spec.limits[0], which has no match or routeRule and so counts every request: put the limit without match last`},
		},
		{
			name: "match and routeRule, neither local nor global",
			spec: RateLimitSpec{Limits: []Limit{{Name: "a", Match: []RouteMatch{{}}, RouteRule: "Beta"}}},
			want: []string{
				`spec.limits[0]: match and routeRule are both set: set at most one (the rule's match is the limit's)`,
				`spec.limits[0].match[0]: is empty: set path, method, headers or queryParams, or leave match out to take every request`,
				`spec.limits[0].routeRule: "Beta" is not a valid rule name: use ` + dnsLabelRule,
				`spec.limits[0]: set local, global or both: a limit without either limits nothing`,
			},
		},
		{
			name: "rates",
			spec: RateLimitSpec{Limits: []Limit{
				{Name: "a", Match: get, Local: &LocalLimit{Unit: "day"}, Global: &GlobalLimit{Requests: maxRateLimitRequests + 1, Unit: UnitHour}},
				{Name: "b", Local: &LocalLimit{Requests: 1, Burst: maxRateLimitRequests + 1}, Global: &GlobalLimit{Requests: 1}},
			}},
			want: []string{
				`spec.limits[0].local.requests: must be at least 1: to refuse every request, use an AccessPolicy`,
				`spec.limits[0].local.unit: unsupported value "day": must be one of second, minute, hour`,
				`spec.limits[0].local.burst: must be at least 1`,
				`spec.limits[0].global.requests: must be at most 1000000000`,
				`spec.limits[0].global.unit: unsupported value "hour": must be one of second, minute`,
				`spec.limits[1].local.unit: is required`,
				`spec.limits[1].local.burst: must be at most 1000000000`,
				`spec.limits[1].global.unit: is required`,
			},
		},
		{
			name: "failure mode and timeout",
			spec: RateLimitSpec{FailureMode: "fail-open", Timeout: &Duration{time.Minute}, Limits: []Limit{{Name: "a", Global: global}}},
			want: []string{
				`spec.failureMode: unsupported value "fail-open": must be one of open, closed`,
				`spec.timeout: must be between 1ms and 10s, got 1m`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.spec.FailureMode == "" {
				tt.spec.FailureMode = FailureModeOpen
			}
			var got []string
			for _, e := range tt.spec.Validate(NewPath("spec")) {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Validate:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestRateLimitReferences(t *testing.T) {
	limitObj := func(service string) *Object {
		o := &Object{APIVersion: APIVersion, Kind: RateLimitKind.Name, Metadata: ObjectMeta{Name: service},
			Spec: &RateLimitSpec{Limits: []Limit{{Name: "all", Local: &LocalLimit{Requests: 1, Unit: UnitSecond}}}}}
		o.Default()
		return o
	}
	stored := map[string]*Object{"catalog": serviceObj("default", "catalog", ProtocolHTTP), "db": serviceObj("default", "db", ProtocolTCP)}
	known := func(kind, _, name string) (*Object, bool) {
		o, ok := stored[name]
		return o, ok && kind == "Service"
	}
	assertErrors(t, CheckReferences([]*Object{limitObj("catalog"), limitObj("db"), limitObj("not-yet")}, known, nil), []string{
		`RateLimit default/db: spec.limits: service "db" speaks tcp: rate limits count HTTP requests`,
	})
}
