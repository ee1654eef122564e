package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/dns/dnsmessage"
)

// resolver is a small real DNS server on UDP and TCP: it answers A queries
// from its zone, truncates over UDP the names in truncate (answering them
// in full over TCP), and never answers the names in silent.
type resolver struct {
	addr     string
	mu       sync.Mutex // guards truncate and silent
	zone     map[string]netip.Addr
	truncate map[string]bool
	silent   map[string]bool
	udpSeen  atomic.Int64
	tcpSeen  atomic.Int64
	pc       net.PacketConn
	ln       net.Listener
	wg       sync.WaitGroup
}

func startResolver(t *testing.T, addr string, zone map[string]netip.Addr) *resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("upstream resolver: %v", err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		t.Fatalf("upstream resolver: %v", err)
	}
	r := &resolver{addr: pc.LocalAddr().String(), zone: zone, truncate: map[string]bool{}, silent: map[string]bool{}, pc: pc, ln: ln}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			r.udpSeen.Add(1)
			if resp := r.answer(buf[:n], false); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.tcpSeen.Add(1)
			q, err := readTCPMsg(c)
			if err == nil {
				if resp := r.answer(q, true); resp != nil {
					_ = writeTCPMsg(c, resp)
				}
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { pc.Close(); ln.Close(); r.wg.Wait() })
	return r
}

func (r *resolver) answer(q []byte, overTCP bool) []byte {
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil || len(m.Questions) != 1 {
		return nil
	}
	name := strings.ToLower(m.Questions[0].Name.String())
	r.mu.Lock()
	silent, truncate := r.silent[name], r.truncate[name]
	r.mu.Unlock()
	if silent {
		return nil
	}
	m.Response, m.RecursionAvailable = true, true
	if truncate && !overTCP {
		m.Truncated = true
		b, _ := m.Pack()
		return b
	}
	ip, ok := r.zone[name]
	if !ok {
		m.RCode = dnsmessage.RCodeNameError
	} else if m.Questions[0].Type == dnsmessage.TypeA {
		m.Answers = append(m.Answers, dnsmessage.Resource{
			Header: dnsmessage.ResourceHeader{Name: m.Questions[0].Name, Class: dnsmessage.ClassINET, TTL: 300},
			Body:   &dnsmessage.AResource{A: ip.As4()},
		})
	}
	b, _ := m.Pack()
	return b
}

func (r *resolver) set(m map[string]bool, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m[name] = true
}

func query(t *testing.T, id uint16, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	m := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}},
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ask sends one query to the proxy over network and parses the answer.
func ask(t *testing.T, network, addr, name string, typ dnsmessage.Type) dnsmessage.Message {
	t.Helper()
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	q := query(t, 0x1234, name, typ)
	var resp []byte
	if network == "tcp" {
		if err := writeTCPMsg(c, q); err != nil {
			t.Fatal(err)
		}
		if resp, err = readTCPMsg(c); err != nil {
			t.Fatalf("%s %s over tcp: %v", name, typ, err)
		}
	} else {
		if _, err := c.Write(q); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%s %s over udp: %v", name, typ, err)
		}
		resp = buf[:n]
	}
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		t.Fatalf("%s: unpack the answer: %v", name, err)
	}
	if m.ID != 0x1234 || !m.Response {
		t.Fatalf("%s: answer has ID %#x response=%v", name, m.ID, m.Response)
	}
	return m
}

var vips = TableFunc(func(svc, ns string) (netip.Addr, bool) {
	switch svc + "." + ns {
	case "payments.default":
		return netip.MustParseAddr("10.96.0.10"), true
	case "ledger.finance":
		return netip.MustParseAddr("10.96.0.11"), true
	}
	return netip.Addr{}, false
})

// externalHosts answers two ExternalService hosts: one with two IPv4
// endpoints, one dual-stack.
var externalHosts = HostTableFunc(func(name string) []netip.Addr {
	switch name {
	case "api.partner.example":
		return []netip.Addr{netip.MustParseAddr("192.0.2.20"), netip.MustParseAddr("192.0.2.21")}
	case "dual.partner.example":
		return []netip.Addr{netip.MustParseAddr("192.0.2.22"), netip.MustParseAddr("2001:db8::22")}
	}
	return nil
})

func startProxy(t *testing.T, o Options) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	o.Table, o.Metrics = vips, reg
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Serve() }()
	t.Cleanup(func() { s.Close(); <-done })
	return s, reg
}

func count(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "weft_dns_queries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestMeshNamesAnsweredLocally(t *testing.T) {
	up := startResolver(t, "127.0.0.53:0", nil)
	s, reg := startProxy(t, Options{Upstreams: []string{up.addr}, Namespace: "default"})
	for _, network := range []string{"udp", "tcp"} {
		for _, name := range []string{
			"payments.", "payments.default.", "payments.default.svc.", "payments.default.svc.weft.",
			"PAYMENTS.Default.SVC.weft.", "payments.default.default.svc.weft.", "payments.default.svc.svc.weft.",
			"payments.default.svc.default.svc.weft.", "ledger.finance.", "ledger.finance.svc.weft.",
		} {
			m := ask(t, network, s.Addr(), name, dnsmessage.TypeA)
			if m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 1 {
				t.Fatalf("%s A over %s: rcode %v, %d answers", name, network, m.RCode, len(m.Answers))
			}
			a := m.Answers[0].Body.(*dnsmessage.AResource).A
			want, _ := vips.VIP(strings.SplitN(strings.ToLower(name), ".", 3)[0], map[bool]string{true: "finance", false: "default"}[strings.HasPrefix(name, "ledger")])
			if netip.AddrFrom4(a) != want || m.Answers[0].Header.Name.String() != name || !m.Authoritative {
				t.Fatalf("%s A over %s: %v for %s, want %v", name, network, netip.AddrFrom4(a), m.Answers[0].Header.Name, want)
			}
			m = ask(t, network, s.Addr(), name, dnsmessage.TypeAAAA)
			if m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 0 {
				t.Fatalf("%s AAAA over %s: rcode %v, %d answers; want an empty NOERROR", name, network, m.RCode, len(m.Answers))
			}
		}
	}
	if up.udpSeen.Load()+up.tcpSeen.Load() != 0 {
		t.Fatalf("mesh names reached the upstream resolver")
	}
	if got := count(t, reg, "local"); got != 40 {
		t.Fatalf("local answers counted %v, want 40", got)
	}
}

// TestExternalHostsAnsweredLocally: an ExternalService host with static
// endpoints resolves to them in the sidecar, by its exact name, over both
// transports; the other address family gets an empty NOERROR; other names,
// the search-path forms of the host included, still go upstream.
func TestExternalHostsAnsweredLocally(t *testing.T) {
	up := startResolver(t, "127.0.0.58:0", map[string]netip.Addr{"example.com.": netip.MustParseAddr("192.0.2.7")})
	s, reg := startProxy(t, Options{Upstreams: []string{up.addr}, Namespace: "default", Hosts: externalHosts})
	addrs := func(m dnsmessage.Message) []string {
		var out []string
		for _, a := range m.Answers {
			switch b := a.Body.(type) {
			case *dnsmessage.AResource:
				out = append(out, netip.AddrFrom4(b.A).String())
			case *dnsmessage.AAAAResource:
				out = append(out, netip.AddrFrom16(b.AAAA).String())
			}
			if a.Header.TTL != meshTTL {
				t.Errorf("TTL %d, want %d", a.Header.TTL, meshTTL)
			}
		}
		return out
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range []struct {
			name string
			typ  dnsmessage.Type
			want string
		}{
			{"api.partner.example.", dnsmessage.TypeA, "192.0.2.20,192.0.2.21"},
			{"API.Partner.Example.", dnsmessage.TypeA, "192.0.2.20,192.0.2.21"},
			{"api.partner.example.", dnsmessage.TypeAAAA, ""},
			{"dual.partner.example.", dnsmessage.TypeA, "192.0.2.22"},
			{"dual.partner.example.", dnsmessage.TypeAAAA, "2001:db8::22"},
			// A mesh name still wins, and is not looked up as a host.
			{"payments.default.", dnsmessage.TypeA, "10.96.0.10"},
		} {
			m := ask(t, network, s.Addr(), tc.name, tc.typ)
			if got := strings.Join(addrs(m), ","); m.RCode != dnsmessage.RCodeSuccess || got != tc.want || !m.Authoritative {
				t.Errorf("%s %s over %s: rcode %v, answers %q, want %q", tc.name, tc.typ, network, m.RCode, got, tc.want)
			}
		}
	}
	if up.udpSeen.Load()+up.tcpSeen.Load() != 0 {
		t.Fatalf("ExternalService hosts reached the upstream resolver")
	}
	if got := count(t, reg, "local"); got != 12 {
		t.Errorf("local answers counted %v, want 12", got)
	}
	// Not an exact host: upstream.
	for _, name := range []string{"api.partner.example.default.svc.weft.", "other.partner.example.", "example.com."} {
		m := ask(t, "udp", s.Addr(), name, dnsmessage.TypeA)
		if name == "example.com." && len(m.Answers) != 1 || name != "example.com." && m.RCode != dnsmessage.RCodeNameError {
			t.Errorf("%s: rcode %v, %d answers: want the upstream's answer", name, m.RCode, len(m.Answers))
		}
	}
	if got := up.udpSeen.Load(); got != 3 {
		t.Errorf("upstream saw %d queries, want 3", got)
	}
}

func TestOtherNamesForwarded(t *testing.T) {
	up := startResolver(t, "127.0.0.54:0", map[string]netip.Addr{
		"example.com.": netip.MustParseAddr("192.0.2.7"),
		"big.example.": netip.MustParseAddr("192.0.2.8"),
	})
	up.set(up.truncate, "big.example.")
	s, reg := startProxy(t, Options{Upstreams: []string{up.addr}, Namespace: "default"})

	for _, network := range []string{"udp", "tcp"} {
		m := ask(t, network, s.Addr(), "example.com.", dnsmessage.TypeA)
		if len(m.Answers) != 1 || netip.AddrFrom4(m.Answers[0].Body.(*dnsmessage.AResource).A) != netip.MustParseAddr("192.0.2.7") {
			t.Fatalf("example.com over %s: %+v", network, m)
		}
		// A mesh-looking name the table does not know goes upstream too.
		if m := ask(t, network, s.Addr(), "unknown.default.svc.weft.", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError {
			t.Fatalf("unknown service over %s: rcode %v, want the upstream's NXDOMAIN", network, m.RCode)
		}
	}
	if up.udpSeen.Load() != 2 || up.tcpSeen.Load() != 2 {
		t.Fatalf("upstream saw %d UDP and %d TCP queries, want 2 and 2: each query on its own transport", up.udpSeen.Load(), up.tcpSeen.Load())
	}

	// Truncated over UDP: the client gets TC and retries over TCP.
	m := ask(t, "udp", s.Addr(), "big.example.", dnsmessage.TypeA)
	if !m.Truncated || len(m.Answers) != 0 {
		t.Fatalf("big.example over udp: truncated=%v answers=%d, want the truncated answer passed on", m.Truncated, len(m.Answers))
	}
	m = ask(t, "tcp", s.Addr(), "big.example.", dnsmessage.TypeA)
	if m.Truncated || len(m.Answers) != 1 {
		t.Fatalf("big.example over tcp: truncated=%v answers=%d", m.Truncated, len(m.Answers))
	}
	// Nothing is cached: the same query goes upstream again.
	before := up.udpSeen.Load()
	ask(t, "udp", s.Addr(), "example.com.", dnsmessage.TypeA)
	if up.udpSeen.Load() != before+1 {
		t.Fatalf("a repeated query did not reach the upstream")
	}
	if got := count(t, reg, "forwarded"); got != 7 {
		t.Fatalf("forwarded counted %v, want 7", got)
	}
}

func TestUpstreamFailover(t *testing.T) {
	dead := startResolver(t, "127.0.0.55:0", nil)
	dead.set(dead.silent, "example.com.")
	live := startResolver(t, "127.0.0.56:0", map[string]netip.Addr{"example.com.": netip.MustParseAddr("192.0.2.9")})
	s, reg := startProxy(t, Options{Upstreams: []string{dead.addr, live.addr}, Timeout: 200 * time.Millisecond})
	start := time.Now()
	m := ask(t, "udp", s.Addr(), "example.com.", dnsmessage.TypeA)
	if len(m.Answers) != 1 {
		t.Fatalf("want the second upstream's answer, got %+v", m)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("failover took %v", d)
	}

	// Every upstream silent: SERVFAIL within the timeouts, counted.
	live.set(live.silent, "example.com.")
	start = time.Now()
	m = ask(t, "udp", s.Addr(), "example.com.", dnsmessage.TypeA)
	if m.RCode != dnsmessage.RCodeServerFailure {
		t.Fatalf("rcode %v, want SERVFAIL", m.RCode)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("SERVFAIL took %v", d)
	}
	if got := count(t, reg, "failed"); got != 1 {
		t.Fatalf("failed counted %v, want 1", got)
	}
}

func TestNeverLoopsToItself(t *testing.T) {
	for _, tc := range []struct{ addr, upstream string }{
		{"127.0.0.1:15053", "127.0.0.1:15053"},
		{"0.0.0.0:15053", "127.0.0.1:15053"},
		{"[::]:15053", "[::1]:15053"},
	} {
		_, err := Listen(Options{Addr: tc.addr, Upstreams: []string{tc.upstream}, Table: vips})
		if err == nil || !strings.Contains(err.Error(), "would loop") {
			t.Errorf("dns %s upstream %s: err %v, want a refusal to loop", tc.addr, tc.upstream, err)
		}
	}
	// Without upstreams, mesh names resolve and the rest fail at once.
	alone, reg := startProxy(t, Options{})
	if m := ask(t, "udp", alone.Addr(), "payments.", dnsmessage.TypeA); len(m.Answers) != 1 {
		t.Fatalf("payments without upstreams: %+v", m)
	}
	if m := ask(t, "udp", alone.Addr(), "example.com.", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeServerFailure {
		t.Fatalf("example.com without upstreams: rcode %v, want SERVFAIL", m.RCode)
	}
	if got := count(t, reg, "failed"); got != 1 {
		t.Fatalf("failed counted %v, want 1", got)
	}

	// A response sent to the proxy is never answered, nor forwarded.
	up := startResolver(t, "127.0.0.57:0", nil)
	s, _ := startProxy(t, Options{Upstreams: []string{up.addr}})
	c, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := dnsmessage.Message{Header: dnsmessage.Header{ID: 9, Response: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName("example.com."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
	b, _ := m.Pack()
	_, _ = c.Write(b)
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Read(make([]byte, 512)); !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Fatalf("a response was answered: %v", err)
	}
	if up.udpSeen.Load() != 0 {
		t.Fatal("a response was forwarded upstream")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestParseResolvConf(t *testing.T) {
	got := ParseResolvConf([]byte("# comment\nsearch default.svc.weft svc.weft weft\nnameserver 10.0.0.2\nnameserver  fe80::1%eth0\nnameserver bogus\noptions ndots:5\nnameserver 1.1.1.1 # x\n"))
	want := []string{"10.0.0.2:53", "[fe80::1%eth0]:53", "1.1.1.1:53"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestMeshName(t *testing.T) {
	for _, tc := range []struct {
		name, svc, ns string
	}{
		{"payments", "payments", "default"},
		{"payments.default", "payments", "default"},
		{"payments.finance.svc", "payments", "finance"},
		{"payments.finance.svc.weft.", "payments", "finance"},
		{"payments.finance.default.svc.weft", "payments", "finance"},
		{"payments.finance.svc.default.svc.weft", "payments", "finance"},
		{"payments.finance.svc.svc.weft", "payments", "finance"},
		{"payments.finance.weft", "payments", "finance"},
		{"payments.svc.weft", "", ""},
		{"payments.weft", "", ""},
		{"payments.finance.other.svc.weft", "", ""},
		{"a.b.c.d", "", ""},
		{"a..b", "", ""},
		{".", "", ""},
	} {
		svc, ns, ok := meshName(tc.name, "default", DefaultDomain)
		if svc != tc.svc || ns != tc.ns || ok != (tc.svc != "") {
			t.Errorf("%q: got %q %q %v, want %q %q", tc.name, svc, ns, ok, tc.svc, tc.ns)
		}
	}
}
