// Package descriptor turns Envoy's rate limit actions (route.v3.RateLimit)
// into the descriptors of a request, for the local and the global rate
// limit filters. It evaluates the actions the mesh's translator emits:
// generic_key, and the envoy.rate_limit_descriptors.expr extension with the
// one expression that names the caller's SPIFFE ID.
package descriptor

import (
	"errors"
	"fmt"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	exprv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rate_limit_descriptors/expr/v3"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/filter"
	"github.com/weftmesh/weft/proxy/xdswire"
)

// Entry is one key and value of a descriptor.
type Entry struct{ Key, Value string }

// Descriptor is the ordered entries one RateLimit produces for a request.
type Descriptor []Entry

// RateLimit is a compiled route.v3.RateLimit: the actions that each append
// an entry.
type RateLimit struct {
	actions []action
}

type action struct {
	key, value string
	peer       bool // the value is the caller's SPIFFE ID
	// skipIfMissing leaves the entry out, rather than the descriptor, when
	// the caller has no identity (skip_if_error).
	skipIfMissing bool
}

// genericKeyDefault is Envoy's key of a generic_key entry that names none.
const genericKeyDefault = "generic_key"

// exprExtension is the extension name of the expression descriptor.
const exprExtension = "envoy.rate_limit_descriptors.expr"

// Compile checks and compiles rate limit actions; errors start with the
// field path below path.
func Compile(rls []*routev3.RateLimit, path string) ([]RateLimit, error) {
	out := make([]RateLimit, 0, len(rls))
	for i, rl := range rls {
		p := fmt.Sprintf("%s[%d]", path, i)
		if len(rl.GetActions()) == 0 {
			return nil, fmt.Errorf("%s.actions: at least one action is required", p)
		}
		var c RateLimit
		for j, a := range rl.GetActions() {
			ap := fmt.Sprintf("%s.actions[%d]", p, j)
			switch s := a.GetActionSpecifier().(type) {
			case *routev3.RateLimit_Action_GenericKey_:
				if s.GenericKey.GetDescriptorValue() == "" {
					return nil, fmt.Errorf("%s.generic_key.descriptor_value: is required", ap)
				}
				key := s.GenericKey.GetDescriptorKey()
				if key == "" {
					key = genericKeyDefault
				}
				c.actions = append(c.actions, action{key: key, value: s.GenericKey.GetDescriptorValue()})
			case *routev3.RateLimit_Action_Extension:
				act, err := compileExtension(s, ap+".extension")
				if err != nil {
					return nil, err
				}
				c.actions = append(c.actions, act)
			default:
				return nil, fmt.Errorf("%s: only generic_key and the %s extension are supported", ap, exprExtension)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func compileExtension(s *routev3.RateLimit_Action_Extension, path string) (action, error) {
	ext := s.Extension
	if ext.GetName() != exprExtension {
		return action{}, fmt.Errorf("%s: %s is not supported", path, ext.GetName())
	}
	var d exprv3.Descriptor
	if ext.GetTypedConfig() == nil {
		return action{}, errors.New(path + ".typed_config: is required")
	}
	if err := xdswire.UnmarshalAny(ext.GetTypedConfig(), &d); err != nil {
		return action{}, fmt.Errorf("%s.typed_config: %w", path, err)
	}
	if d.GetDescriptorKey() == "" {
		return action{}, fmt.Errorf("%s.typed_config.descriptor_key: is required", path)
	}
	if d.GetText() != xdsmeta.PeerIdentityExpr {
		return action{}, fmt.Errorf("%s.typed_config.text: only the expression %q is supported", path, xdsmeta.PeerIdentityExpr)
	}
	return action{key: d.GetDescriptorKey(), peer: true, skipIfMissing: d.GetSkipIfError()}, nil
}

// Append appends to dst the descriptor the rate limit produces for a
// request. ok is false when an action has nothing to add (a caller without
// an identity) and may not skip its entry, or when no entry is left: then,
// as in Envoy, the rate limit produces no descriptor. A caller may pass a
// small array's slice as dst to avoid allocating.
func (rl *RateLimit) Append(dst Descriptor, s *filter.Stream) (d Descriptor, ok bool) {
	n := len(dst)
	for _, a := range rl.actions {
		v := a.value
		if a.peer {
			if v = s.PeerID(); v == "" {
				if a.skipIfMissing {
					continue
				}
				return dst[:n], false
			}
		}
		dst = append(dst, Entry{Key: a.key, Value: v})
	}
	return dst, len(dst) > n
}
