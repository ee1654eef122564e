// Package fault is Envoy's fault injection filter
// (envoy.filters.http.fault): it delays and aborts a configured share of
// requests, per route through typed_per_filter_config. A route's config
// replaces the listener's whole, as in Envoy.
package fault

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/proxy/filter"
)

// Name is the filter's name in http_filters and typed_per_filter_config.
const Name = "envoy.filters.http.fault"

func init() {
	filter.Register(filter.Factory{
		Name:   Name,
		Config: &faultv3.HTTPFault{},
		New: func(cfg proto.Message, _ filter.Env) (filter.HTTP, error) {
			c, err := Compile(cfg.(*faultv3.HTTPFault))
			if err != nil {
				return nil, err
			}
			return &Filter{base: c}, nil
		},
		PerRoute: func(cfg proto.Message) (any, error) { return Compile(cfg.(*faultv3.HTTPFault)) },
	})
}

// Config is a compiled HTTPFault.
type Config struct {
	delay      time.Duration
	delayShare share
	abort      *filter.Reply
	abortShare share
}

// share is a FractionalPercent: numerator out of denominator.
type share struct{ num, den uint32 }

func (s share) sample() bool {
	if s.num == 0 {
		return false
	}
	if s.num >= s.den {
		return true
	}
	return rand.Uint32N(s.den) < s.num
}

func compileShare(p *typev3.FractionalPercent, path string) (share, error) {
	if p == nil {
		// Envoy reads an absent percentage as 0%.
		return share{den: 100}, nil
	}
	s := share{num: p.GetNumerator()}
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		s.den = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		s.den = 10_000
	case typev3.FractionalPercent_MILLION:
		s.den = 1_000_000
	default:
		return s, fmt.Errorf("%s.denominator: unknown denominator %v", path, p.GetDenominator())
	}
	return s, nil
}

// Compile checks and compiles an HTTPFault. Errors start with the field path.
func Compile(f *faultv3.HTTPFault) (*Config, error) {
	c := &Config{}
	if d := f.GetDelay(); d != nil {
		fd, ok := d.GetFaultDelaySecifier().(*commonfaultv3.FaultDelay_FixedDelay)
		if !ok {
			return nil, errors.New("delay: fixed_delay is required (header_delay is not supported)")
		}
		if err := fd.FixedDelay.CheckValid(); err != nil || fd.FixedDelay.AsDuration() < 0 {
			return nil, errors.New("delay.fixed_delay: invalid duration")
		}
		c.delay = fd.FixedDelay.AsDuration()
		var err error
		if c.delayShare, err = compileShare(d.GetPercentage(), "delay.percentage"); err != nil {
			return nil, err
		}
	}
	if a := f.GetAbort(); a != nil {
		reply := &filter.Reply{Body: "fault filter abort", Reason: "fault_filter_abort"}
		switch e := a.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus >= 600 {
				return nil, fmt.Errorf("abort.http_status: %d is not in [200, 600)", e.HttpStatus)
			}
			reply.Status = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			code := int(e.GrpcStatus)
			reply.Status, reply.GRPCStatus = http.StatusOK, &code
		default:
			return nil, errors.New("abort: http_status or grpc_status is required (header_abort is not supported)")
		}
		var err error
		if c.abortShare, err = compileShare(a.GetPercentage(), "abort.percentage"); err != nil {
			return nil, err
		}
		c.abort = reply
	}
	return c, nil
}

// Decide samples the config's faults for one request.
func (c *Config) Decide() filter.Decision {
	var d filter.Decision
	if c.delay > 0 && c.delayShare.sample() {
		d.Delay = c.delay
	}
	if c.abort != nil && c.abortShare.sample() {
		d.Reply = c.abort
	}
	return d
}

// Filter is the fault filter of one connection manager.
type Filter struct {
	base *Config
}

// DecodeHeaders applies the route's fault config, or the filter's own when
// the route has none.
func (f *Filter) DecodeHeaders(_ *http.Request, _ *filter.Stream, perRoute any) filter.Decision {
	c := f.base
	if pr, ok := perRoute.(*Config); ok && pr != nil {
		c = pr
	}
	return c.Decide()
}

var _ filter.HTTP = (*Filter)(nil)
