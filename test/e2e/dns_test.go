package e2e

// DNS in transparent mode: a pod whose app knows nothing of the mesh (its
// resolv.conf names an ordinary resolver in another namespace) resolves
// mesh names to their VIPs through its proxy's DNS resolver, which the
// pod's `weft proxy iptables --capture-dns` rules send port 53 to, and
// every other name through the pod's own resolver. Connections to
// server-first TCP services (nothing sent until the server speaks, as with
// MySQL) never wait for protocol detection.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// podResolver is a small real DNS server (UDP and TCP port 53) in a pod
// namespace: the resolver a pod's resolv.conf names.
type podResolver struct {
	ip      string
	zone    map[string]netip.Addr
	mu      sync.Mutex
	queries []string // names asked, in order
}

func startPodResolver(t *testing.T, ns, ip string, zone map[string]netip.Addr) *podResolver {
	t.Helper()
	r := &podResolver{ip: ip, zone: zone}
	var pc net.PacketConn
	if err := inNetns(ns, func() error {
		var err error
		pc, err = net.ListenPacket("udp", ip+":53")
		return err
	}); err != nil {
		t.Fatalf("resolver in %s: %v", ns, err)
	}
	ln, err := listenIn(ns, ip+":53")
	if err != nil {
		pc.Close()
		t.Fatalf("resolver in %s: %v", ns, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := r.answer(buf[:n]); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err == nil {
				q := make([]byte, int(l[0])<<8|int(l[1]))
				if _, err := io.ReadFull(c, q); err == nil {
					if resp := r.answer(q); resp != nil {
						_, _ = c.Write(append([]byte{byte(len(resp) >> 8), byte(len(resp))}, resp...))
					}
				}
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { pc.Close(); ln.Close(); wg.Wait() })
	return r
}

func (r *podResolver) answer(q []byte) []byte {
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil || len(m.Questions) != 1 || m.Response {
		return nil
	}
	name := strings.ToLower(m.Questions[0].Name.String())
	r.mu.Lock()
	r.queries = append(r.queries, name)
	r.mu.Unlock()
	m.Response, m.RecursionAvailable, m.Authoritative = true, true, true
	ip, ok := r.zone[name]
	switch {
	case !ok:
		m.RCode = dnsmessage.RCodeNameError
	case m.Questions[0].Type == dnsmessage.TypeA:
		m.Answers = []dnsmessage.Resource{{
			Header: dnsmessage.ResourceHeader{Name: m.Questions[0].Name, Class: dnsmessage.ClassINET, TTL: 60},
			Body:   &dnsmessage.AResource{A: ip.As4()},
		}}
	}
	b, _ := m.Pack()
	return b
}

func (r *podResolver) asked(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range r.queries {
		if strings.TrimSuffix(q, ".") == name {
			return true
		}
	}
	return false
}

// serveGreeter runs a server-first TCP app in ns on addr: it says hello
// before reading anything, then echoes.
func serveGreeter(t *testing.T, ns, addr string) {
	t.Helper()
	serveTCPIn(t, ns, addr, func(c net.Conn) {
		_, _ = io.WriteString(c, "hello")
		_, _ = io.Copy(c, c)
	})
}

// netnsResolvConf gives namespace ns its own resolv.conf: `ip netns exec`
// bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf, for the
// proxy and the pod's apps alike.
func netnsResolvConf(t *testing.T, ns, content string) {
	t.Helper()
	dir := filepath.Join("/etc/netns", ns)
	t.Cleanup(func() {
		_ = os.RemoveAll(dir)
		_ = os.Remove("/etc/netns") // only if no other namespace uses it
	})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startDNSPod is startCapturedPod with DNS capture: the pod's resolv.conf
// names nameserver, and its port 53 goes to the proxy's resolver.
func (m *meshNet) startDNSPod(t *testing.T, name, service, nameserver string) *capturedPod {
	t.Helper()
	ns, ip := m.createPod(t, name)
	netnsResolvConf(t, ns, fmt.Sprintf("nameserver %s\nsearch default.svc.weft svc.weft weft\n", nameserver))
	p := &capturedPod{ns: ns, ip: ip, service: service, admin: httpClientIn(ns)}
	if out, err := runIn(ns, weftBin, "proxy", "iptables", "--proxy-gid", fmt.Sprint(proxyGID),
		"--exclude-inbound-ports", "15000", "--capture-dns"); err != nil {
		t.Fatalf("weft proxy iptables in %s: %v\n%s", ns, err, out)
	}
	m.runProxy(t, p, name, "--mode", "transparent", "--app", "127.0.0.1:8080", "--inbound", ip+":8080")
	return p
}

// greet dials addr from inside ns and reads the server's greeting; it
// returns how long the greeting took.
func greet(ns, addr string) (time.Duration, error) {
	start := time.Now()
	var c net.Conn
	if err := inNetns(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		return time.Since(start), fmt.Errorf("greeting from %s: %w", addr, err)
	}
	if string(buf) != "hello" {
		return time.Since(start), fmt.Errorf("greeting from %s: %q", addr, buf)
	}
	return time.Since(start), nil
}

func TestDNSTransparentPod(t *testing.T) {
	m := startMeshNet(t)
	m.apply(t, `
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: payments}
spec:
  ports: [{port: 8080, protocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: greeter}
spec:
  ports: [{port: 3306, protocol: tcp}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: client}
spec:
  ports: [{port: 8080, protocol: http}]
`)
	// The pod's ordinary resolver, in a namespace of its own, and a
	// server-first service outside the mesh beside it.
	dnsNS, dnsIP := m.createPod(t, "dns")
	resolver := startPodResolver(t, dnsNS, dnsIP, map[string]netip.Addr{
		"external.example.": netip.MustParseAddr("192.0.2.77"),
	})
	serveGreeter(t, dnsNS, dnsIP+":3306")

	greeter := m.startCapturedPod(t, "gr", "greeter", "v1", nil)
	serveGreeter(t, greeter.ns, "0.0.0.0:8080")
	m.startCapturedPod(t, "pay", "payments", "v1", nil)
	client := m.startDNSPod(t, "cl", "client", dnsIP)
	paymentsVIP := client.vipOf(t, "payments.default")
	greeterVIP := client.vipOf(t, "greeter.default")
	t.Logf("VIPs: payments %s, greeter %s; the pod's resolver %s", paymentsVIP, greeterVIP, dnsIP)

	// An unmodified app: glibc's resolver, reading the pod's resolv.conf.
	getent := func(name string) (string, error) {
		out, err := outputIn(client.ns, "getent", "ahostsv4", name)
		if err != nil {
			return "", err
		}
		if f := strings.Fields(out); len(f) > 0 {
			return f[0], nil
		}
		return "", errors.New("no address")
	}
	for _, name := range []string{"payments.default.svc.weft", "payments.default", "payments"} {
		eventually(t, 20*time.Second, name+" resolves to the VIP", func() error {
			got, err := getent(name)
			if err != nil {
				return err
			}
			if got != paymentsVIP {
				return fmt.Errorf("%s resolved to %s, want the VIP %s", name, got, paymentsVIP)
			}
			return nil
		})
	}
	if resolver.asked("payments.default.svc.weft") {
		t.Errorf("the mesh name reached the pod's resolver: the proxy should answer it")
	}
	if got, err := getent("external.example"); err != nil || got != "192.0.2.77" {
		t.Fatalf("external.example: %q %v, want 192.0.2.77 from the pod's resolver", got, err)
	}
	if !resolver.asked("external.example") {
		t.Errorf("external.example was answered without the pod's resolver")
	}
	if _, err := getent("missing.example"); err == nil {
		t.Errorf("a name the resolver does not know resolved")
	}

	// Server-first TCP on a port a Service declares tcp, through the mesh
	// and to a destination outside it (passthrough): the greeting comes at
	// once, protocol detection never waits for it.
	eventually(t, 20*time.Second, "greeter reached through its VIP", func() error {
		_, err := greet(client.ns, greeterVIP+":3306")
		return err
	})
	for _, addr := range []string{greeterVIP + ":3306", dnsIP + ":3306"} {
		took, err := greet(client.ns, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("greeting from %s after %v", addr, took)
		if took > time.Second {
			t.Errorf("greeting from %s took %v: a server-first connection stalled", addr, took)
		}
	}

	metrics := client.adminGet(t, "/metrics")
	for _, want := range []string{`weft_dns_queries_total{result="local"}`, `weft_dns_queries_total{result="forwarded"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("client proxy metrics lack %s:\n%s", want, grepLines(metrics, "weft_dns"))
		}
	}
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, "weft_protocol_detection_fallbacks_total{") && !strings.HasSuffix(l, " 0") {
			t.Errorf("a captured connection waited for protocol detection: %s", l)
		}
	}
}
