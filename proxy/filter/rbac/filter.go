package rbac

import (
	"errors"
	"fmt"
	"net/http"
	"path"

	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/proxy/filter"
)

// Name is the HTTP filter's name in http_filters.
const Name = "envoy.filters.http.rbac"

func init() {
	filter.Register(filter.Factory{
		Name:   Name,
		Config: &rbachttpv3.RBAC{},
		New: func(cfg proto.Message, _ filter.Env) (filter.HTTP, error) {
			return New(cfg.(*rbachttpv3.RBAC))
		},
	})
}

// Filter is the RBAC filter of one connection manager.
type Filter struct {
	engine *Engine
}

// New compiles an HTTP RBAC filter. Errors start with the field path.
func New(cfg *rbachttpv3.RBAC) (*Filter, error) {
	if cfg.GetRules() == nil {
		// Envoy allows every request then; a config that says nothing is
		// more likely a mistake than a wish.
		return nil, errRulesRequired
	}
	e, err := Compile(cfg.GetRules(), false)
	if err != nil {
		return nil, prefixErr("rules", err)
	}
	return &Filter{engine: e}, nil
}

// DecodeHeaders refuses a request the engine denies with 403 and a
// weft-denied-by header naming the rule; the connection manager logs the
// refusal with its reason.
func (f *Filter) DecodeHeaders(r *http.Request, s *filter.Stream, _ any) filter.Decision {
	req := Request{
		Peer:          s.PeerID(),
		Authenticated: s.TLS != nil && len(s.TLS.PeerCertificates) > 0,
		Method:        r.Method,
		Path:          normalizePath(r.URL.Path),
		Host:          r.Host,
		Header:        r.Header,
		Stream:        s,
	}
	if ok, _, reply := f.engine.Allowed(&req); !ok {
		return filter.Decision{Reply: reply}
	}
	return filter.Continue
}

// normalizePath resolves dot segments and merges repeated slashes, as the
// app behind the proxy would, so that "/public/../admin" cannot slip past a
// rule for /admin. It allocates only for a path that is not clean already.
func normalizePath(p string) string {
	if p == "" {
		return "/"
	}
	return path.Clean(p)
}

var errRulesRequired = errors.New("rules: are required")

// prefixErr puts a field path before a compile error's own path.
func prefixErr(path string, err error) error {
	return fmt.Errorf("%s.%w", path, err)
}

var _ filter.HTTP = (*Filter)(nil)
