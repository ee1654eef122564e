package v1alpha1_test

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/decode"
	v1 "github.com/weftmesh/weft/api/v1alpha1"
)

const collectorCA = `-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIUY7e8i+udNNLuVO/J0oN6EarCH3cwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMY29sbGVjdG9yLWNhMCAXDTI2MTEyMTE1MDgxOVoYDzIxMjYx
MDI4MTUwODE5WjAXMRUwEwYDVQQDDAxjb2xsZWN0b3ItY2EwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAS50yAUgdhgJ8FSSXgKmi4CNKuPJSbxVSSpz2/D6Vo43ljy
aVItEvl+UKMUbnaW9a+nrWhwqiZE7tUL3pfY7roDo1MwUTAdBgNVHQ4EFgQUbHKL
aB3HYSvf4ndNwPOQh0kWS1YwHwYDVR0jBBgwFoAUbHKLaB3HYSvf4ndNwPOQh0kW
S1YwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBqu0I4GFivHFFC
SSghYA1UsvT4oF7JPfKCXHMe+KNu3AIhALPUhdznd+NTwBeRGhw0EWvtbIBSEhvz
uI13sccXxj93
-----END CERTIFICATE-----`

// meshTracing decodes (which defaults and validates) a Mesh with tracing;
// it returns the errors' text.
func meshTracing(t *testing.T, tracing string) (*v1.MeshSpec, string) {
	t.Helper()
	doc := "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: {name: default}\nspec:\n  tracing:\n" + tracing
	objs, err := decode.Documents([]byte(doc), "mesh.yaml")
	if err != nil {
		return nil, err.Error()
	}
	return objs[0].Spec.(*v1.MeshSpec), ""
}

func TestTracingDecodeAndDefault(t *testing.T) {
	tests := []struct {
		yaml     string
		sampling float64
		target   string // URL of the parsed target
		protocol v1.OTLPProtocol
	}{
		{"    sampling: \"1%\"\n    otlp: {endpoint: \"127.0.0.1:4317\", insecure: true}\n", 1, "http://127.0.0.1:4317", v1.OTLPGRPC},
		{"    sampling: 0.5\n    otlp: {endpoint: \"10.0.0.1:4318\", protocol: http, insecure: true}\n", 0.5, "http://10.0.0.1:4318/v1/traces", v1.OTLPHTTP},
		{"    otlp: {endpoint: \"http://[::1]:4318/otlp/traces\", protocol: http, insecure: true}\n", 1, "http://[::1]:4318/otlp/traces", v1.OTLPHTTP},
		{"    sampling: 100%\n    otlp:\n      endpoint: https://10.0.0.2:4317\n      ca: |\n        " + strings.ReplaceAll(collectorCA, "\n", "\n        ") + "\n", 100, "https://10.0.0.2:4317", v1.OTLPGRPC},
	}
	for _, tt := range tests {
		spec, errs := meshTracing(t, tt.yaml)
		if errs != "" {
			t.Errorf("%s: %v", tt.yaml, errs)
			continue
		}
		tr := spec.Tracing
		target, err := tr.OTLP.Target()
		if err != nil || tr.SamplingPercent() != tt.sampling || target.URL() != tt.target || tr.OTLP.Protocol != tt.protocol {
			t.Errorf("%s: sampling %v, target %s (%v), protocol %s", tt.yaml, tr.SamplingPercent(), target.URL(), err, tr.OTLP.Protocol)
		}
	}
}

func TestTracingValidate(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"    sampling: 101\n    otlp: {endpoint: \"127.0.0.1:4317\", insecure: true}\n",
			"spec.tracing.sampling: must be between 0 and 100 (percent), got 101"},
		{"    sampling: \"-1%\"\n    otlp: {endpoint: \"127.0.0.1:4317\", insecure: true}\n",
			"spec.tracing.sampling: must be between 0 and 100"},
		{"    sampling: 1%\n", "spec.tracing.otlp: is required"},
		{"    otlp: {insecure: true}\n", "spec.tracing.otlp.endpoint: is required"},
		{"    otlp: {endpoint: \"127.0.0.1:4317\", protocol: thrift, insecure: true}\n",
			`spec.tracing.otlp.protocol: unsupported value "thrift": must be one of grpc, http`},
		{"    otlp: {endpoint: \"collector:4317\", insecure: true}\n",
			`spec.tracing.otlp.endpoint: host "collector" must be an IP address`},
		{"    otlp: {endpoint: \"127.0.0.1\", insecure: true}\n",
			`spec.tracing.otlp.endpoint: "127.0.0.1" is not host:port or a URL with a port`},
		{"    otlp: {endpoint: \"http://127.0.0.1:4317\"}\n",
			"spec.tracing.otlp.endpoint: an http:// endpoint is plaintext: set insecure: true, or use https://"},
		{"    otlp: {endpoint: \"http://127.0.0.1:4317/v1/traces\", insecure: true}\n",
			"spec.tracing.otlp.endpoint: a path is meaningful only with protocol http"},
		{"    otlp: {endpoint: \"127.0.0.1:4317\"}\n",
			"spec.tracing.otlp.ca: is required (the PEM of the collector's CA) unless insecure is true"},
		{"    otlp: {endpoint: \"127.0.0.1:4317\", ca: nonsense}\n", "spec.tracing.otlp.ca: holds no PEM certificate"},
		{"    otlp: {endpoint: \"127.0.0.1:4317\", insecure: true, ca: x}\n",
			"spec.tracing.otlp.ca: must be empty when insecure is true"},
	}
	for _, tt := range tests {
		if _, errs := meshTracing(t, tt.yaml); !strings.Contains(errs, tt.want) {
			t.Errorf("%s: errors %q, want %q", tt.yaml, errs, tt.want)
		}
	}
	doc := "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: {name: default}\nspec:\n  tracing: {sampling: lots}\n"
	if _, err := decode.Documents([]byte(doc), "mesh.yaml"); err == nil || !strings.Contains(err.Error(), `invalid percentage "lots"`) {
		t.Errorf("sampling: lots: %v", err)
	}
}
