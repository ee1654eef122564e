package translate

import (
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	// Register the Envoy types that only travel inside Any, so they unpack.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// TestEnvoyValidates runs Envoy's own proto validation (protoc-gen-validate)
// on every resource and every Any inside it, and checks that each snapshot is
// consistent, as an ADS server requires: every EDS cluster has its load
// assignment and every RDS name its RouteConfiguration, and nothing more.
func TestEnvoyValidates(t *testing.T) {
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ForNode(input(tc.svcs, false), tc.node)
			if err != nil {
				t.Fatal(err)
			}
			for typeURL, items := range r.ByType() {
				for _, res := range items {
					validateDeep(t, typeURL+" "+resourceName(res), res)
				}
			}
			snap, err := cache.NewSnapshot("1", r.ByType())
			if err != nil {
				t.Fatal(err)
			}
			if err := snap.Consistent(); err != nil {
				t.Error(err)
			}
		})
	}
}

type validator interface{ ValidateAll() error }

// validateDeep validates m, then walks its fields: protoc-gen-validate
// checks an Any's type URL but not what it holds.
func validateDeep(t *testing.T, path string, m proto.Message) {
	t.Helper()
	if a, ok := m.(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Errorf("%s: unpack %s: %v", path, a.GetTypeUrl(), err)
			return
		}
		validateDeep(t, path+"("+a.GetTypeUrl()+")", inner)
		return
	}
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				validateDeep(t, p, v.List().Get(i).Message().Interface())
			}
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					validateDeep(t, p+"["+k.String()+"]", mv.Message().Interface())
					return true
				})
			}
		default:
			validateDeep(t, p, v.Message().Interface())
		}
		return true
	})
}
