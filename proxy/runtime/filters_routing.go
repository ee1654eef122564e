package runtime

import (
	"fmt"

	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/proxy/filter"
	"github.com/weftmesh/weft/proxy/hcm"

	// The HTTP filters this proxy links in; each registers itself.
	_ "github.com/weftmesh/weft/proxy/filter/fault"
	_ "github.com/weftmesh/weft/proxy/filter/jwt"
	_ "github.com/weftmesh/weft/proxy/filter/localratelimit"
	_ "github.com/weftmesh/weft/proxy/filter/ratelimit"
	_ "github.com/weftmesh/weft/proxy/filter/rbac"
)

// httpFilter builds an HTTP filter that comes before the router.
func httpFilter(f *hcmv3.HttpFilter, path string, env filter.Env) (hcm.Filter, error) {
	a := f.GetTypedConfig()
	tpath := join(path, "typed_config")
	if a == nil {
		return hcm.Filter{}, pathErr(tpath, "a typed_config is required")
	}
	if a.MessageIs(&routerv3.Router{}) {
		return hcm.Filter{}, pathErr(path, "the router must be the last HTTP filter")
	}
	fac, ok := filter.ByConfig(a.MessageName())
	if !ok {
		return hcm.Filter{}, pathErr(path, "%s is not supported", f.GetName())
	}
	cfg := fac.Config.ProtoReflect().New().Interface()
	if err := unpackAny(a, cfg, tpath); err != nil {
		return hcm.Filter{}, err
	}
	hf, err := fac.New(cfg, env)
	if err != nil {
		return hcm.Filter{}, pathErr(fmt.Sprintf("%s(%s)", tpath, a.MessageName()), "%v", err)
	}
	return hcm.Filter{Name: f.GetName(), Filter: hf}, nil
}
