package v1alpha1

import (
	"strings"
	"testing"
)

func TestAccessPolicyValidate(t *testing.T) {
	valid := func() AccessPolicySpec {
		return AccessPolicySpec{Service: "catalog", Rules: []AccessRule{{
			Name: "web",
			From: []AccessSource{{Services: []string{"web", "ops/*", "*/dashboard"}}, {Unauthenticated: true}},
			To:   []AccessRequest{{Methods: []string{"GET"}, Paths: []PathMatch{{Prefix: "/items"}}, Ports: []int32{8080}}},
			When: []AccessCondition{{Key: "claims.group", Values: []string{"admins", "ops-*"}}},
		}}}
	}
	tests := []struct {
		name   string
		change func(*AccessPolicySpec)
		want   []string // substrings, one per error, in order
	}{
		{"valid", func(*AccessPolicySpec) {}, nil},
		{"no service", func(s *AccessPolicySpec) { s.Service = "" }, []string{"spec.service: is required"}},
		{"bad action", func(s *AccessPolicySpec) { s.Action = "AUDIT" }, []string{`spec.action: unsupported value "AUDIT": must be one of ALLOW, DENY`}},
		{"no rules", func(s *AccessPolicySpec) { s.Rules = nil }, []string{"spec.rules: at least one rule is required"}},
		{"duplicate rule name", func(s *AccessPolicySpec) { s.Rules = append(s.Rules, s.Rules[0]) },
			[]string{`spec.rules[1].name: duplicate rule name "web": spec.rules[0] has it too`}},
		{"two kinds in one source", func(s *AccessPolicySpec) { s.Rules[0].From[0].Namespaces = []string{"shop"} },
			[]string{"spec.rules[0].from[0]: services and namespaces are both set"}},
		{"empty source", func(s *AccessPolicySpec) { s.Rules[0].From[0] = AccessSource{} },
			[]string{"spec.rules[0].from[0]: set exactly one of identities, services, namespaces or unauthenticated"}},
		{"identities", func(s *AccessPolicySpec) {
			s.Rules[0].From[0] = AccessSource{Identities: []string{"web", "spiffe://td/ns/a/*/b", "*x*", "spiffe://td/ns/a/sa/b"}}
		}, []string{
			`from[0].identities[0]: "web" is not a SPIFFE ID`,
			`from[0].identities[1]: "spiffe://td/ns/a/*/b": '*' may only stand at the start or the end`,
			`from[0].identities[2]: "*x*" has '*' at both ends`,
		}},
		{"services and namespaces", func(s *AccessPolicySpec) {
			s.Rules[0].From = []AccessSource{{Services: []string{"Web", "a/b/c", "*"}}, {Namespaces: []string{"-x", "*"}}}
		}, []string{
			`from[0].services[0]: "Web": service "Web" is not valid`,
			`from[0].services[1]: "a/b/c": service "b/c" is not valid`,
			`from[0].services[2]: "*" is every service of the policy's namespace`,
			`from[1].namespaces[0]: "-x" is not a valid namespace`,
		}},
		{"request", func(s *AccessPolicySpec) {
			s.Rules[0].To = []AccessRequest{{}, {Methods: []string{"get"}, Paths: []PathMatch{{Prefix: "/a/"}}, Headers: []HeaderMatch{{Name: "X-A", Present: true}}, Ports: []int32{0}}}
		}, []string{
			"spec.rules[0].to[0]: is empty",
			`spec.rules[0].to[1].methods[0]: "get" is not a valid method`,
			"spec.rules[0].to[1].paths[0].prefix: \"/a/\" must not end with '/'",
			"spec.rules[0].to[1].headers[0].name: \"X-A\" is not a valid header name",
			"spec.rules[0].to[1].ports[0]: must be between 1 and 65535",
		}},
		{"conditions", func(s *AccessPolicySpec) {
			s.Rules[0].When = []AccessCondition{{Key: "request.headers.x"}, {Key: "claims.", Values: []string{"a*b", ""}}}
		}, []string{
			`spec.rules[0].when[0].key: "request.headers.x" is not supported: use claims.<name>`,
			"spec.rules[0].when[0]: set values, notValues or both",
			`spec.rules[0].when[1].key: "claims.": the claim name must be`,
			`spec.rules[0].when[1].values[0]: "a*b": '*' may only stand alone`,
			"spec.rules[0].when[1].values[1]: must not be empty",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			tt.change(&s)
			s.Default()
			errs := s.Validate(NewPath("spec"))
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), errs)
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

func TestAccessPolicyRuleName(t *testing.T) {
	one := AccessPolicySpec{Rules: []AccessRule{{}}}
	two := AccessPolicySpec{Rules: []AccessRule{{Name: "admin"}, {}}}
	for _, c := range []struct{ got, want string }{
		{one.RuleName("shop", "deny-admin", 0), "shop/deny-admin"},
		{two.RuleName("shop", "p", 0), "shop/p/admin"},
		{two.RuleName("shop", "p", 1), "shop/p[1]"},
	} {
		if c.got != c.want {
			t.Errorf("RuleName = %q, want %q", c.got, c.want)
		}
	}
}

func TestAccessPolicyReferences(t *testing.T) {
	db := &Object{APIVersion: APIVersion, Kind: "Service", Metadata: ObjectMeta{Name: "db", Namespace: "default"},
		Spec: &ServiceSpec{Ports: []ServicePort{{Port: 5432, Protocol: ProtocolTCP}}}}
	ap := &Object{APIVersion: APIVersion, Kind: AccessPolicyKind.Name, Metadata: ObjectMeta{Name: "db", Namespace: "default"},
		Spec: &AccessPolicySpec{Service: "db", Action: AccessAllow, Rules: []AccessRule{{
			To:   []AccessRequest{{Methods: []string{"GET"}, Ports: []int32{5432}}},
			When: []AccessCondition{{Key: "claims.sub", Values: []string{"x"}}},
		}}}}
	errs := CheckReferences([]*Object{db, ap}, nil, nil)
	want := []string{
		`AccessPolicy default/db: spec.rules[0].when: service "db" speaks tcp`,
		`AccessPolicy default/db: spec.rules[0].to[0].methods: service "db" speaks tcp`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %v, want %d errors", errs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, errs[i], w)
		}
	}
	orphan := &Object{APIVersion: APIVersion, Kind: AccessPolicyKind.Name, Metadata: ObjectMeta{Name: "x", Namespace: "default"},
		Spec: &AccessPolicySpec{Service: "nowhere", Action: AccessDeny, Rules: []AccessRule{{}}}}
	if errs := CheckReferences([]*Object{orphan}, nil, nil); len(errs) != 1 || !strings.Contains(errs[0].Error(), `unknown service "nowhere"`) {
		t.Errorf("policy for an unknown service: %v", errs)
	}
}

func TestServiceMTLSOverride(t *testing.T) {
	s := &ServiceSpec{Ports: []ServicePort{{Port: 80}}, MTLS: &MTLS{Mode: "LAX"}}
	s.Default()
	if errs := s.Validate(NewPath("spec")); len(errs) != 1 || !strings.Contains(errs[0].Error(), "spec.mtls.mode: unsupported value \"LAX\"") {
		t.Errorf("bad override: %v", errs)
	}
	s.MTLS.Mode = MTLSPermissive
	if errs := s.Validate(NewPath("spec")); errs != nil {
		t.Errorf("PERMISSIVE: %v", errs)
	}
	if got := s.MTLSMode(MTLSStrict); got != MTLSPermissive {
		t.Errorf("override = %s", got)
	}
	if got := (*ServiceSpec)(nil).MTLSMode(MTLSStrict); got != MTLSStrict {
		t.Errorf("no Service = %s", got)
	}
}
