package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/testpki"
)

// translatorGoldens are the translator's golden outputs: what the control
// plane sends a proxy, resource by resource. Reading them (not importing the
// translator) keeps the proxy free of control-plane code.
const translatorGoldens = "../../controlplane/translate/testdata"

// TestTranslatorOutputIsAccepted checks the other side of the contract: every
// configuration the translator produces validates and compiles here.
func TestTranslatorOutputIsAccepted(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(translatorGoldens, "*.golden"))
	if len(files) == 0 {
		t.Skip("no translator golden files")
	}
	for _, file := range files {
		if strings.HasPrefix(filepath.Base(file), "proxyless-") {
			// What a proxyless gRPC client or server is sent (API
			// listeners, certificate providers): gRPC's xDS client reads
			// it, not this proxy.
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			res := loadGolden(t, file)
			rt := New(Options{})
			if _, err := rt.build(res, rt.cur.Load()); err != nil {
				t.Fatalf("the proxy rejects the translator's output:\n%v", err)
			}
		})
	}
}

// loadGolden reads a translator golden file. The goldens carry a
// placeholder trust bundle; the proxy parses bundles, so a real root takes
// its place.
func loadGolden(t *testing.T, file string) *Resources {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	res := parseGolden(t, string(b))
	for _, sec := range res.Secrets {
		if vc := sec.GetValidationContext(); vc != nil {
			vc.TrustedCa = rootCA(testpki.NewCA(t, "root").PEM()).GetValidationContext().GetTrustedCa()
		}
	}
	return res
}

// parseGolden reads "# <type> <name>" headers, each followed by the
// resource in protojson.
func parseGolden(t *testing.T, text string) *Resources {
	res := emptyResources()
	for _, block := range strings.Split(text, "\n# ") {
		block = strings.TrimPrefix(block, "# ")
		header, body, ok := strings.Cut(block, "\n")
		if !ok || strings.TrimSpace(body) == "" {
			continue
		}
		typ, name, _ := strings.Cut(header, " ")
		var m proto.Message
		switch typ {
		case "envoy.config.listener.v3.Listener":
			l := &listenerv3.Listener{}
			res.Listeners[name], m = l, l
		case "envoy.config.route.v3.RouteConfiguration":
			r := &routev3.RouteConfiguration{}
			res.Routes[name], m = r, r
		case "envoy.config.cluster.v3.Cluster":
			c := &clusterv3.Cluster{}
			res.Clusters[name], m = c, c
		case "envoy.config.endpoint.v3.ClusterLoadAssignment":
			e := &endpointv3.ClusterLoadAssignment{}
			res.Endpoints[name], m = e, e
		case "envoy.extensions.transport_sockets.tls.v3.Secret":
			s := &tlsv3.Secret{}
			res.Secrets[name], m = s, s
		default:
			t.Fatalf("unknown resource type %q", typ)
		}
		if err := protojson.Unmarshal([]byte(body), m); err != nil {
			t.Fatalf("%s %s: %v", typ, name, err)
		}
	}
	return res
}
