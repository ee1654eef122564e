package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/ratelog"
	"github.com/weftmesh/weft/proxy/capture"
)

// A listener whose chains are told apart by what the connection says
// (application_protocols, server_names), or that has an http_inspector,
// chooses its chain per connection as Envoy does: the inspectors peek at
// the first bytes (detect.go), then filter_chain_match picks the chain,
// criterion by criterion in Envoy's order — destination port, destination
// IP, server name, transport protocol, application protocol — each time
// keeping the chains that name the connection's value or, when none does,
// the chains that leave it empty.

// inspectors are a listener's listener filters.
type inspectors struct {
	tls, http bool
	// httpDisabled and tlsDisabled are the destination ports the
	// http_inspector and the tls_inspector skip (filter_disabled):
	// server-first protocols must never wait for them.
	httpDisabled, tlsDisabled []portRange
}

type portRange struct{ start, end uint32 } // [start, end)

// listenerFilters reads a listener's listener filters: tls_inspector and
// http_inspector, each optionally disabled on destination ports. A
// tls_inspector is disabled only on a listener whose chains are chosen per
// connection (capture or detection): the PERMISSIVE tls/raw_buffer pair
// always peeks.
func listenerFilters(l *listenerv3.Listener) (inspectors, error) {
	var in inspectors
	tlsDisabledAt := ""
	for i, f := range l.GetListenerFilters() {
		path := fmt.Sprintf("listener_filters[%d]", i)
		a := f.GetTypedConfig()
		var disabled *[]portRange
		if a.MessageIs(&httpinspectorv3.HttpInspector{}) {
			if err := unpackAny(a, &httpinspectorv3.HttpInspector{}, path+".typed_config"); err != nil {
				return in, err
			}
			in.http, disabled = true, &in.httpDisabled
		} else {
			if err := unpackAny(a, &tlsinspectorv3.TlsInspector{}, path+".typed_config"); err != nil {
				return in, err
			}
			in.tls, disabled = true, &in.tlsDisabled
			if f.GetFilterDisabled() != nil {
				tlsDisabledAt = path + ".filter_disabled"
			}
		}
		if d := f.GetFilterDisabled(); d != nil {
			ranges, err := disabledPorts(d, path+".filter_disabled")
			if err != nil {
				return in, err
			}
			*disabled = ranges
		}
	}
	if tlsDisabledAt != "" && !capturesConnections(l) && !usesDetection(l, in) {
		return in, pathErr(tlsDisabledAt, "is supported on a tls_inspector only where chains are chosen per connection (protocol detection, original destination)")
	}
	return in, nil
}

// enabled reports whether an inspector disabled on ranges runs for a
// connection to port.
func enabled(on bool, ranges []portRange, port uint16) bool {
	return on && !slices.ContainsFunc(ranges, func(r portRange) bool {
		return uint32(port) >= r.start && uint32(port) < r.end
	})
}

// disabledPorts reads a filter_disabled predicate: a destination port
// range, or an or_match of them.
func disabledPorts(p *listenerv3.ListenerFilterChainMatchPredicate, path string) ([]portRange, error) {
	switch r := p.GetRule().(type) {
	case *listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange:
		s, e := r.DestinationPortRange.GetStart(), r.DestinationPortRange.GetEnd()
		if s < 0 || e > 65536 || s >= e {
			return nil, pathErr(path+".destination_port_range", "[%d, %d) is not a port range", s, e)
		}
		return []portRange{{uint32(s), uint32(e)}}, nil
	case *listenerv3.ListenerFilterChainMatchPredicate_OrMatch:
		var out []portRange
		for i, sub := range r.OrMatch.GetRules() {
			rs, err := disabledPorts(sub, fmt.Sprintf("%s.or_match.rules[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out = append(out, rs...)
		}
		return out, nil
	}
	return nil, pathErr(path, "only destination_port_range and or_match are supported")
}

// usesDetection tells whether a listener's chains are chosen by protocol
// detection rather than by the PERMISSIVE tls/raw_buffer pair alone.
func usesDetection(l *listenerv3.Listener, in inspectors) bool {
	if in.http {
		return true
	}
	for _, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		if len(m.GetApplicationProtocols()) > 0 || len(m.GetServerNames()) > 0 ||
			m.GetDestinationPort() != nil || len(m.GetPrefixRanges()) > 0 {
			return true
		}
	}
	return len(l.GetFilterChains()) > 2
}

// chainMatch is the part of a filter_chain_match this proxy honours.
type chainMatch struct {
	port        uint32 // 0: any
	prefixes    []netip.Prefix
	serverNames []string // exact, or "*.suffix"
	transport   string
	protocols   []string
}

// chainSelector picks a listener's filter chain per connection.
type chainSelector struct {
	listener string
	chains   []*filterChain
	matches  []chainMatch
	in       inspectors
	// timeout bounds the wait for the first bytes (listener_filters_timeout;
	// 0 waits for ever, as in Envoy). On timeout, continueOnTimeout
	// serves the connection by what was seen (raw TCP when nothing was),
	// else it is closed.
	timeout           time.Duration
	continueOnTimeout bool
	// originalDst reads where a redirected connection was going.
	originalDst bool
	fallbacks   *prometheus.CounterVec // by reason, curried with the listener
	log         *ratelog.Limiter

	// defaultChain, if set, serves the connections no chain matches: the
	// default_filter_chain (capture.go).
	defaultChain *filterChain
}

// detectChains compiles a listener whose chain is chosen per connection.
func (b *builder) detectChains(l *listenerv3.Listener, lc *listenerConfig, in inspectors) error {
	cs := &chainSelector{listener: l.GetName(), in: in, timeout: defaultInspectTimeout,
		continueOnTimeout: l.GetContinueOnListenerFiltersTimeout(),
		originalDst:       l.GetUseOriginalDst().GetValue(),
		log:               ratelog.New(b.rt.log, slog.LevelWarn, 5, 10*time.Second)}
	if t := l.GetListenerFiltersTimeout(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() < 0 {
			return pathErr("listener_filters_timeout", "invalid duration")
		}
		cs.timeout = t.AsDuration()
	}
	if n := len(l.GetFilterChains()); n == 0 {
		return pathErr("filter_chains", "a filter chain is required")
	}
	seen := map[string]int{}
	for i, fc := range l.GetFilterChains() {
		path := fmt.Sprintf("filter_chains[%d]", i)
		c, err := b.filterChain(fc, lc.direction, path)
		if err != nil {
			return err
		}
		if c.name == "" {
			c.name = strconv.Itoa(i)
		}
		m, err := compileChainMatch(fc.GetFilterChainMatch(), in, c, path+".filter_chain_match")
		if err != nil {
			return err
		}
		key := m.String()
		if j, dup := seen[key]; dup {
			return pathErr(path+".filter_chain_match", "matches the same connections as filter_chains[%d]", j)
		}
		if err := b.passthroughChain(fc, c, cs.originalDst, path); err != nil {
			return err
		}
		seen[key] = i
		cs.chains, cs.matches = append(cs.chains, c), append(cs.matches, m)
	}
	// Plaintext chains beside TLS ones (a PERMISSIVE transparent inbound
	// listener) are PERMISSIVE's plaintext side: their TCP sessions end
	// when the listener becomes STRICT (socket.use).
	if slices.ContainsFunc(cs.chains, func(c *filterChain) bool { return c.tls != nil }) {
		for _, c := range cs.chains {
			c.permissive = c.tls == nil && !c.passthrough
		}
	}
	cs.fallbacks = detectFallbacks(b.rt.opts.Metrics).MustCurryWith(prometheus.Labels{"listener": cs.listener})
	lc.filterChain = *cs.chains[0]
	lc.detect = cs
	return nil
}

func compileChainMatch(m *listenerv3.FilterChainMatch, in inspectors, c *filterChain, path string) (chainMatch, error) {
	cm := chainMatch{transport: m.GetTransportProtocol(), protocols: m.GetApplicationProtocols(), serverNames: m.GetServerNames()}
	if p := m.GetDestinationPort(); p != nil {
		if p.GetValue() == 0 || p.GetValue() > 65535 {
			return cm, pathErr(path+".destination_port", "%d is not a port", p.GetValue())
		}
		cm.port = p.GetValue()
	}
	for i, r := range m.GetPrefixRanges() {
		a, err := netip.ParseAddr(r.GetAddressPrefix())
		bits := int(r.GetPrefixLen().GetValue())
		if r.GetPrefixLen() == nil {
			bits = a.BitLen()
		}
		if err != nil || bits > a.BitLen() {
			return cm, pathErr(fmt.Sprintf("%s.prefix_ranges[%d]", path, i), "%s/%d is not a CIDR range", r.GetAddressPrefix(), bits)
		}
		cm.prefixes = append(cm.prefixes, netip.PrefixFrom(a.Unmap(), bits-(a.BitLen()-a.Unmap().BitLen())).Masked())
	}
	switch cm.transport {
	case "":
	case transportTLS:
		if !in.tls {
			return cm, pathErr(path+".transport_protocol", "tls needs an envoy.filters.listener.tls_inspector")
		}
	case transportRaw:
		if c.tls != nil {
			return cm, pathErr(path+".transport_protocol", "raw_buffer does not fit the chain's TLS transport socket")
		}
	default:
		return cm, pathErr(path+".transport_protocol", "%q is not supported (tls or raw_buffer)", cm.transport)
	}
	if len(cm.serverNames) > 0 && !in.tls {
		return cm, pathErr(path+".server_names", "need an envoy.filters.listener.tls_inspector")
	}
	for i, n := range cm.serverNames {
		if n == "" || strings.Contains(n[1:], "*") || strings.HasPrefix(n, "*") && !strings.HasPrefix(n, "*.") {
			return cm, pathErr(fmt.Sprintf("%s.server_names[%d]", path, i), "%q: want a host name or *.suffix", n)
		}
		cm.serverNames[i] = strings.ToLower(n)
	}
	for i, p := range cm.protocols {
		switch p {
		case protoHTTP10, protoHTTP11, protoH2C:
			if !in.http {
				return cm, pathErr(fmt.Sprintf("%s.application_protocols[%d]", path, i), "%q needs an envoy.filters.listener.http_inspector", p)
			}
		default:
			if !in.tls {
				return cm, pathErr(fmt.Sprintf("%s.application_protocols[%d]", path, i), "%q (an ALPN protocol) needs an envoy.filters.listener.tls_inspector", p)
			}
		}
	}
	return cm, nil
}

// String is a canonical form, to find chains that match the same
// connections (Envoy refuses those too).
func (m chainMatch) String() string {
	return fmt.Sprint(m.port, m.prefixes, m.serverNames, m.transport, m.protocols)
}

// pick returns the chain for a connection to dst with detection d, or nil.
func (cs *chainSelector) pick(dst netip.AddrPort, d detection) *filterChain {
	cand := make([]int, len(cs.chains))
	for i := range cand {
		cand[i] = i
	}
	narrow := func(specific func(m *chainMatch) (set, ok bool)) {
		var hit, wild []int
		for _, i := range cand {
			set, ok := specific(&cs.matches[i])
			switch {
			case !set:
				wild = append(wild, i)
			case ok:
				hit = append(hit, i)
			}
		}
		if len(hit) > 0 {
			cand = hit
		} else {
			cand = wild
		}
	}
	narrow(func(m *chainMatch) (bool, bool) { return m.port != 0, m.port == uint32(dst.Port()) })
	// The longest matching prefix wins, as in Envoy.
	best := -1
	for _, i := range cand {
		for _, p := range cs.matches[i].prefixes {
			if p.Contains(dst.Addr().Unmap()) && p.Bits() > best {
				best = p.Bits()
			}
		}
	}
	narrow(func(m *chainMatch) (bool, bool) {
		return len(m.prefixes) > 0, slices.ContainsFunc(m.prefixes, func(p netip.Prefix) bool {
			return p.Bits() == best && p.Contains(dst.Addr().Unmap())
		})
	})
	// Exact server names before the longest wildcard.
	sni := strings.ToLower(d.serverName)
	bestName := ""
	for _, i := range cand {
		for _, n := range cs.matches[i].serverNames {
			if nameMatches(n, sni) && (bestName == "" || !strings.HasPrefix(n, "*") && strings.HasPrefix(bestName, "*") ||
				strings.HasPrefix(n, "*") == strings.HasPrefix(bestName, "*") && len(n) > len(bestName)) {
				bestName = n
			}
		}
	}
	narrow(func(m *chainMatch) (bool, bool) {
		return len(m.serverNames) > 0, bestName != "" && slices.Contains(m.serverNames, bestName)
	})
	narrow(func(m *chainMatch) (bool, bool) { return m.transport != "", m.transport == d.transport })
	narrow(func(m *chainMatch) (bool, bool) {
		return len(m.protocols) > 0, slices.ContainsFunc(d.protocols, func(p string) bool { return slices.Contains(m.protocols, p) })
	})
	if len(cand) == 0 {
		return nil
	}
	return cs.chains[cand[0]]
}

func nameMatches(pattern, name string) bool {
	if name == "" {
		return false
	}
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(name, suffix) && len(name) > len(suffix)
	}
	return pattern == name
}

// chainNamed finds a chain of the current configuration by name, for the
// next request of a connection whose chain was chosen at accept time.
func (cs *chainSelector) chainNamed(name string) *filterChain {
	for _, c := range cs.chains {
		if c.name == name {
			return c
		}
	}
	if cs.defaultChain != nil && cs.defaultChain.name == name {
		return cs.defaultChain
	}
	return nil
}

// lookupOriginalDst reads where a redirected connection was going
// (SO_ORIGINAL_DST). Tests stand in for iptables by replacing it.
var lookupOriginalDst = capture.OriginalDst

// destination is where the connection was going: its original destination
// when the listener receives redirected connections, else its local
// address.
func (cs *chainSelector) destination(c net.Conn) netip.AddrPort {
	if cs.originalDst {
		if ap, err := lookupOriginalDst(c); err == nil {
			return ap
		}
	}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		return a.AddrPort()
	}
	return netip.AddrPort{}
}

// detect peeks at a connection's first bytes, picks its chain and serves
// it; a connection no chain matches is closed.
func (s *socket) detect(cs *chainSelector, c net.Conn) {
	s.rt.bg.Add(1)
	go func() {
		defer s.rt.bg.Done()
		dst := cs.destination(c)
		d, ok := s.inspectConn(cs, c, dst)
		if !ok {
			c.Close()
			return
		}
		fc := cs.pick(dst, d)
		if fc == nil {
			fc = cs.defaultChain
		}
		if fc != nil && fc.passthrough {
			s.servePassthrough(fc, c, dst)
			return
		}
		if fc == nil {
			cs.log.Log("no filter chain matches the connection: closed", "listener", cs.listener,
				"remote", c.RemoteAddr().String(), "destination", dst.String(), "transport", d.transport,
				"protocols", d.protocols, "server_name", d.serverName)
			c.Close()
			return
		}
		if fc.http != nil {
			// The connection's requests are served by this chain of the
			// configuration current at each request (requestChain), and
			// a route to an ORIGINAL_DST cluster sends them where the
			// connection was going. A connection that was not redirected
			// has no original destination: such a route must not send
			// its requests to the listener itself.
			dc := &detectedConn{Conn: c, chain: fc.name, dst: dst}
			if cs.originalDst && redirected(c, dst) {
				dc.originalDst = dst
			}
			c = dc
		}
		s.serve(fc, c)
	}()
}

// inspectConn runs the listener's inspectors on c. ok is false when the
// connection must be closed (it failed, or timed out without
// continue_on_listener_filters_timeout).
func (s *socket) inspectConn(cs *chainSelector, c net.Conn, dst netip.AddrPort) (d detection, ok bool) {
	httpOn := enabled(cs.in.http, cs.in.httpDisabled, dst.Port())
	tlsOn := enabled(cs.in.tls, cs.in.tlsDisabled, dst.Port())
	if !httpOn && !tlsOn {
		// Nothing to inspect (a tcp port): never wait for the client.
		return detection{transport: transportRaw}, true
	}
	start := time.Now()
	if cs.timeout > 0 {
		_ = c.SetReadDeadline(start.Add(cs.timeout))
	}
	// A socket that is force-closed ends the wait at once.
	stop := context.AfterFunc(s.ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer func() {
		if stop() {
			_ = c.SetReadDeadline(time.Time{})
		} else {
			ok = false
		}
	}()
	bp := detectBufs.Get().(*[]byte)
	defer detectBufs.Put(bp)
	buf := *bp
	have := 0
	for {
		n, err := peekMore(c, buf, have)
		switch {
		case err == nil:
			have = n
			d, v := classify(buf[:have], have == len(buf))
			if v == decided {
				return cs.filterDetection(d, httpOn, tlsOn), true
			}
			continue
		case errors.Is(err, io.EOF):
			d, _ := classify(buf[:have], true)
			return cs.filterDetection(d, httpOn, tlsOn), true
		case errors.Is(err, os.ErrDeadlineExceeded) && cs.continueOnTimeout:
			d, _ := classify(buf[:have], true)
			d = cs.filterDetection(d, httpOn, tlsOn)
			reason := "timeout"
			if have > 0 {
				reason = "incomplete"
			}
			cs.fallbacks.WithLabelValues(reason).Inc()
			cs.log.Log("protocol detection timed out: serving the connection by what it sent so far",
				"listener", cs.listener, "remote", c.RemoteAddr().String(), "destination", dst.String(),
				"reason", reason, "bytes", have, "transport", d.transport, "protocols", d.protocols,
				"timeout", cs.timeout, "waited", time.Since(start).Round(time.Millisecond))
			return d, true
		case errors.Is(err, os.ErrDeadlineExceeded):
			cs.fallbacks.WithLabelValues("timeout_closed").Inc()
			cs.log.Log("protocol detection timed out: connection closed (continue_on_listener_filters_timeout is off)",
				"listener", cs.listener, "remote", c.RemoteAddr().String(), "destination", dst.String(), "timeout", cs.timeout)
			return d, false
		default:
			s.rt.log.Debug("protocol detection failed", "listener", cs.listener, "remote", c.RemoteAddr().String(), "err", err)
			return d, false
		}
	}
}

// detectBufs hold the bytes peeked at; a detection keeps none of them (the
// SNI and ALPN it returns are copies).
var detectBufs = sync.Pool{New: func() any { b := make([]byte, maxDetectBytes); return &b }}

// filterDetection keeps what the listener's inspectors, as enabled for
// the connection's port, would have seen.
func (cs *chainSelector) filterDetection(d detection, httpOn, tlsOn bool) detection {
	if d.transport == transportTLS && !tlsOn {
		return detection{transport: transportRaw}
	}
	if d.transport == transportRaw && !httpOn {
		return detection{transport: transportRaw}
	}
	return d
}

// detectFallbacks returns weft_protocol_detection_fallbacks_total on reg,
// registering it on first use; a nil reg keeps it private.
func detectFallbacks(reg prometheus.Registerer) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_protocol_detection_fallbacks_total",
		Help: "Connections whose protocol detection did not finish in listener_filters_timeout, by listener and reason: timeout (nothing sent: a server-first protocol, served as TCP), incomplete (served by what was sent), timeout_closed (closed).",
	}, []string{"listener", "reason"})
	if reg == nil {
		return v
	}
	if err := reg.Register(v); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("runtime: register weft_protocol_detection_fallbacks_total: %v", err))
	}
	return v
}
