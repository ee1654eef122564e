package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProxyLinksNoControlPlaneDependencies keeps what the sidecar does not
// need out of its binary: each proxy of a mesh pays for its size in memory
// (the pages of the binary it touches) and every node in build time. It
// lists the packages of the build README.md gives, -tags grpcnotrace.
func TestProxyLinksNoControlPlaneDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the dependencies with")
	}
	out, err := exec.Command(goTool, "list", "-tags", "grpcnotrace", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []struct{ prefix, why string }{
		{"go.etcd.io/", "the store is the control plane's"},
		{"k8s.io/", "Kubernetes clients are the control plane's and the injector's"},
		{"sigs.k8s.io/", "Kubernetes and YAML are the control plane's and the CLI's"},
		{"istio.io/", "Istio's API types are the control plane's"},
		{"github.com/weftmesh/weft/controlplane", "the control plane"},
		{"github.com/weftmesh/weft/api/client", "the CLI's API client"},
		{"github.com/weftmesh/weft/api/v1alpha1", "the mesh's resources reach a proxy as xDS"},
		// A reachable call of reflect's Method or MethodByName with a name
		// not known at link time (text/template's, for one) makes the
		// linker keep every exported method of every type: some 4 MB of
		// text that the kernel's fault-around then keeps resident.
		{"text/template", "templates keep every exported method in the binary"},
		{"html/template", "templates keep every exported method in the binary"},
		{"github.com/spf13/cobra", "it executes text templates (the proxy parses flags with pflag)"},
		{"golang.org/x/net/trace", "gRPC's request tracing, left out by -tags grpcnotrace"},
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f.prefix) {
				t.Errorf("weft-proxy links %s: %s", pkg, f.why)
			}
		}
	}
}
