package v1alpha1

import (
	"strings"
	"testing"
)

func TestAccessPolicyWarnings(t *testing.T) {
	deny := &AccessPolicySpec{Service: "catalog", Action: AccessDeny, Rules: []AccessRule{{
		Name: "admin",
		From: []AccessSource{{Namespaces: []string{"batch"}}, {Unauthenticated: true}},
		To:   []AccessRequest{{Paths: []PathMatch{{Prefix: "/admin"}}}},
	}, {
		Name: "writes",
		To:   []AccessRequest{{Methods: []string{"POST", "PUT", "DELETE"}}},
	}}}
	allow := &AccessPolicySpec{Service: "catalog", Action: AccessAllow, Rules: []AccessRule{
		// Shadowed by admin: a service of batch, paths under /admin.
		{Name: "reports", From: []AccessSource{{Services: []string{"batch/report"}}},
			To: []AccessRequest{{Methods: []string{"GET"}, Paths: []PathMatch{{Exact: "/admin/reports"}, {Prefix: "/admin/x"}}}}},
		// Not shadowed: /administrator is not under /admin.
		{Name: "near", From: []AccessSource{{Namespaces: []string{"batch"}}}, To: []AccessRequest{{Paths: []PathMatch{{Prefix: "/administrator"}}}}},
		// Shadowed by writes, which takes every source.
		{Name: "upload", From: []AccessSource{{Identities: []string{"*"}}}, To: []AccessRequest{{Methods: []string{"PUT"}}}},
		// Not shadowed: GET is not a write.
		{Name: "reads", To: []AccessRequest{{Methods: []string{"GET", "PUT"}}}},
		// A port the service does not serve, in one of two entries.
		{Name: "ports", To: []AccessRequest{{Ports: []int32{9090}}, {Methods: []string{"GET"}, Ports: []int32{8080}}}},
		// Only a port the service does not serve.
		{Name: "dead-port", To: []AccessRequest{{Ports: []int32{9090}}}},
		// Plaintext clients of a STRICT service.
		{Name: "plain", From: []AccessSource{{Unauthenticated: true}}},
		// Claims without a RequestAuth.
		{Name: "claims", When: []AccessCondition{{Key: "claims.group", Values: []string{"admins"}}}},
	}}
	env := AccessEnv{TrustDomain: "weft.local", ServedPort: 8080, Mode: MTLSStrict, Deny: map[string]*AccessPolicySpec{"deny": deny}}
	got := AccessPolicyWarnings("shop", "allow", allow, env)
	want := []string{
		"rules[0] (reports) is shadowed: every request it allows is denied by shop/deny/admin",
		"rules[2] (upload) is shadowed: every request it allows is denied by shop/deny/writes",
		"rules[4] (ports).to[0] can never match: service catalog serves port 8080, not 9090",
		"rules[5] (dead-port).to[0] can never match",
		"rules[5] (dead-port) can never match",
		"rules[6] (plain).from[0] can never match: service catalog is STRICT",
		"rules[6] (plain) can never match",
		"rules[7] (claims).when can never hold: service catalog has no RequestAuth",
		"rules[7] (claims) can never match",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d warnings, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d = %q, want prefix %q", i, got[i], want[i])
		}
	}

	// PERMISSIVE with a RequestAuth: plaintext and claims rules can match.
	env.Mode, env.RequestAuth = MTLSPermissive, true
	for _, w := range AccessPolicyWarnings("shop", "allow", allow, env) {
		if strings.Contains(w, "(plain)") || strings.Contains(w, "(claims)") {
			t.Errorf("unexpected warning: %s", w)
		}
	}
}
