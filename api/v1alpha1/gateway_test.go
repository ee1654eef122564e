package v1alpha1_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/decode"
	v1 "github.com/weftmesh/weft/api/v1alpha1"
)

// The decode fuzzer's seeds double as the Gateway's examples.
const gatewayTestdata = "../decode/testdata"

func TestDecodeGatewayExample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(gatewayTestdata, "gateway-ingress.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode.Documents(data, "gateway-ingress.yaml")
	if err != nil {
		t.Fatalf("Documents:\n%v", err)
	}
	if len(objs) != 2 {
		t.Fatalf("got %d objects, want a Gateway and a Route", len(objs))
	}
	gw := objs[0].Spec.(*v1.GatewaySpec)
	if got := gw.Listeners[1].Hosts; len(got) != 1 || got[0] != "*" {
		t.Errorf("HTTP listener hosts defaulted to %q, want [*]", got)
	}
	if n := len(gw.Listeners[0].TLS.Certificates); n != 2 {
		t.Errorf("HTTPS listener has %d certificates, want 2", n)
	}
	rt := objs[1].Spec.(*v1.RouteSpec)
	if !rt.AttachesToGateways() || rt.Hosts[0] != "shop.example.test" {
		t.Errorf("Route gateways %q hosts %q, want attached to public for shop.example.test", rt.Gateways, rt.Hosts)
	}
}

func TestGatewayValidationNamesFields(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(gatewayTestdata, "gateway-awkward.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = decode.Documents(data, "gateway-awkward.yaml")
	if err == nil {
		t.Fatal("awkward Gateway and Route were accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`spec.listeners[0].hosts[0]: "shop.*.test" is not a valid host`,
		`spec.listeners[0].tls: is required on an HTTPS listener`,
		`spec.listeners[1].port: port 443 is taken by spec.listeners[0]`,
		`spec.listeners[1].tls: is only allowed on an HTTPS listener`,
		`spec.listeners[2].tls.certificates[0]: certificatePEM and privateKeyPEM are not a usable pair`,
		`spec.listeners[3].protocol: unsupported value "TCP"`,
		`spec.listeners[3].httpsPort: must be between 1 and 65535, got 99999`,
		`spec.hosts: is only used with gateways`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q; got:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "nope") {
		t.Errorf("error echoes the private key:\n%s", msg)
	}
}

func TestGatewayHostMatches(t *testing.T) {
	for _, c := range []struct {
		pattern, host string
		want          bool
	}{
		{"*", "anything.test", true},
		{"shop.example.test", "shop.example.test", true},
		{"shop.example.test", "api.example.test", false},
		{"*.example.test", "api.example.test", true},
		{"*.example.test", "a.b.example.test", true},
		{"*.example.test", "example.test", false},
		{"*.example.test", ".example.test", false},
	} {
		if got := v1.GatewayHostMatches(c.pattern, c.host); got != c.want {
			t.Errorf("GatewayHostMatches(%q, %q) = %v, want %v", c.pattern, c.host, got, c.want)
		}
	}
	for h, want := range map[string]bool{"*": true, "*.a.test": true, "a.test": true, "a.*.test": false, "A.test": false, "**.a": false, "": false} {
		if got := v1.IsGatewayHost(h); got != want {
			t.Errorf("IsGatewayHost(%q) = %v, want %v", h, got, want)
		}
	}
}
