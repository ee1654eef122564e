package runtime

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/internal/testpki"
	"github.com/weftmesh/weft/proxy/observe"
)

var (
	svcWeb  = service{name: "web", namespace: "default", protocol: "http"}
	svcGRPC = service{name: "greeter", namespace: "default", protocol: "grpc"}
	svcEcho = service{name: "echo", namespace: "default", protocol: "tcp"}
	svcA    = service{name: "a", namespace: "default", protocol: "http"}
)

// mesh is an in-process pair: a client-side proxy with an upstream port per
// service and an HTTP proxy port, and a server-side proxy per service in
// front of its app.
type mesh struct {
	ca        *testpki.CA
	web       *webApp
	grpc      *grpcApp
	servers   map[service]*Runtime
	serverReg map[service]*prometheus.Registry
	inbound   map[service]string
	client    *Runtime
	clientReg *prometheus.Registry
	clientRes *Resources
	local     map[service]string // the client proxy's bound upstream ports
	httpProxy string
}

func newMesh(t testing.TB) *mesh {
	t.Helper()
	m := &mesh{
		ca:        testpki.NewCA(t, "mesh root"),
		web:       startWebApp(t),
		grpc:      startGRPCApp(t),
		servers:   map[service]*Runtime{},
		serverReg: map[service]*prometheus.Registry{},
		inbound:   map[service]string{},
		local:     map[service]string{},
	}
	apps := map[service]string{svcWeb: m.web.addr, svcGRPC: m.grpc.addr, svcEcho: startEchoApp(t)}
	for s, app := range apps {
		reg := prometheus.NewRegistry()
		m.serverReg[s] = reg
		rt := New(Options{Identity: newIdentity(t, m.ca, s), Metrics: reg,
			Workload: observe.Peer{Service: s.name, Namespace: s.namespace, Version: "v1"}})
		t.Cleanup(func() { rt.Close() })
		if err := rt.Apply(serverResources(t, s, serverIP+":0", app, m.ca.PEM())); err != nil {
			t.Fatalf("server %s: %v", s.host(), err)
		}
		m.servers[s] = rt
		m.inbound[s] = rt.ListenerAddr(xdsmeta.InboundListener).String()
	}

	m.clientReg = prometheus.NewRegistry()
	m.client = New(Options{Identity: newIdentity(t, m.ca, svcA), Metrics: m.clientReg,
		Workload: observe.Peer{Service: svcA.name, Namespace: svcA.namespace, Version: "v7"}})
	t.Cleanup(func() { m.client.Close() })
	m.clientRes = m.clientResources(t)
	if err := m.client.Apply(m.clientRes); err != nil {
		t.Fatalf("client: %v", err)
	}
	for s := range apps {
		m.local[s] = m.client.ListenerAddr(outboundListener(t, s, clientIP+":0").Name).String()
	}
	m.httpProxy = m.client.ListenerAddr(xdsmeta.HTTPProxyListener).String()
	return m
}

func (m *mesh) clientResources(t testing.TB) *Resources {
	res := emptyResources()
	res.Secrets[xdsmeta.SecretRootCA] = rootCA(m.ca.PEM())
	for _, s := range []service{svcWeb, svcGRPC, svcEcho} {
		addUpstream(t, res, s, clientIP+":0", m.inbound[s])
	}
	l := httpProxyListener(t, clientIP+":0")
	res.Listeners[l.Name] = l
	rc := httpProxyRoute("default", 80, svcWeb, svcGRPC)
	res.Routes[rc.Name] = rc
	return res
}

func h1Client(t testing.TB) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func h2cClient(t *testing.T) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t testing.TB, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", u, err)
	}
	return res, string(b)
}

func TestMeshHTTP(t *testing.T) {
	m := newMesh(t)
	base := "http://" + m.local[svcWeb]

	t.Run("http1", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, base+"/echo?q=1", strings.NewReader("hello"))
		req.Header.Set("Connection", "keep-alive, X-Hop")
		req.Header.Set("X-Hop", "must not pass")
		req.Header.Set("Keep-Alive", "timeout=5")
		req.Header.Set("User-Agent", "mesh-test")
		res, err := h1Client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || string(body) != "POST hello" {
			t.Fatalf("got %d %q", res.StatusCode, body)
		}
		want := map[string]string{
			"X-Seen-Proto":           "HTTP/1.1",
			"X-Seen-Path":            "/echo?q=1",
			"X-Seen-Host":            m.local[svcWeb],
			"X-Seen-Forwarded-Proto": "http",
			"X-Seen-Hop":             "",
			"X-Seen-User-Agent":      "mesh-test",
		}
		for k, v := range want {
			if got := res.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if id := res.Header.Get("X-Seen-Request-Id"); len(id) != 36 {
			t.Errorf("x-request-id = %q, want a UUID", id)
		}
	})

	t.Run("request id kept", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		req.Header.Set("X-Request-Id", "given")
		res, err := h1Client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("X-Seen-Request-Id"); got != "given" {
			t.Errorf("x-request-id = %q, want the client's", got)
		}
	})

	t.Run("h2c", func(t *testing.T) {
		res, body := get(t, h2cClient(t), base+"/h2c")
		if res.ProtoMajor != 2 || res.StatusCode != 200 || body != "GET " {
			t.Fatalf("got %s %d %q", res.Proto, res.StatusCode, body)
		}
		// The app is HTTP/1.1: the inbound side translated.
		if got := res.Header.Get("X-Seen-Proto"); got != "HTTP/1.1" {
			t.Errorf("app saw %s", got)
		}
	})

	t.Run("streaming flushes at once", func(t *testing.T) {
		res, err := h1Client(t).Get(base + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		br := bufio.NewReader(res.Body)
		line, err := br.ReadString('\n')
		if err != nil || line != "data: first\n" {
			t.Fatalf("first event: %q %v", line, err)
		}
		// The app holds the second event until the first arrived here.
		m.web.release <- struct{}{}
		rest, _ := io.ReadAll(br)
		if !strings.Contains(string(rest), "data: second") {
			t.Fatalf("second event: %q", rest)
		}
	})

	t.Run("trailers", func(t *testing.T) {
		res, body := get(t, h1Client(t), base+"/trailers")
		if body != "body" {
			t.Fatalf("body %q", body)
		}
		if got := res.Trailer.Get("X-Checksum"); got != "abc" {
			t.Errorf("announced trailer = %q, want abc", got)
		}
		if got := res.Trailer.Get("X-Late"); got != "late" {
			t.Errorf("unannounced trailer = %q, want late", got)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		c, br := wsHandshake(t, m.local[svcWeb], "web")
		defer c.Close()
		for _, msg := range []string{"hello", "again"} {
			if _, err := io.WriteString(c, msg); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len(msg))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
				t.Fatalf("echo: %q %v", buf, err)
			}
		}
	})

	t.Run("http proxy", func(t *testing.T) {
		proxyURL, _ := url.Parse("http://" + m.httpProxy)
		tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for _, host := range []string{"web.default", "web", "web:80", "WEB.default:80"} {
			res, body := get(t, c, "http://"+host+"/via-proxy?x=y")
			if res.StatusCode != 200 || body != "GET " {
				t.Errorf("%s: %d %q", host, res.StatusCode, body)
			}
			if got := res.Header.Get("X-Seen-Path"); got != "/via-proxy?x=y" {
				t.Errorf("%s: app saw path %q", host, got)
			}
		}
		res, _ := get(t, c, "http://unknown.default/")
		if res.StatusCode != http.StatusNotFound || res.Header.Get("X-Weft-Error") != "route_not_found" {
			t.Errorf("unknown host: %d %q", res.StatusCode, res.Header.Get("X-Weft-Error"))
		}
	})
}

func TestMeshGRPC(t *testing.T) {
	m := newMesh(t)
	conn, err := grpc.NewClient("passthrough:///"+m.local[svcGRPC], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	hc := healthpb.NewHealthClient(conn)
	res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check: %v %v", res, err)
	}
	// The status travels in trailers.
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown service: %v, want NotFound", err)
	}

	tc := testgrpc.NewTestServiceClient(conn)
	var trailer metadata.MD
	_, err = tc.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.PermissionDenied), Message: "denied here"}}, grpc.Trailer(&trailer))
	if s, _ := status.FromError(err); s.Code() != codes.PermissionDenied || s.Message() != "denied here" {
		t.Fatalf("unary error: %v", err)
	}
	if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "kept" {
		t.Errorf("trailer metadata = %v", trailer)
	}

	// Bidirectional: each reply must arrive before the next request is sent.
	stream, err := tc.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, msg := range []string{"one", "two", "three"} {
		if err := stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(msg)}}); err != nil {
			t.Fatal(err)
		}
		got, err := stream.Recv()
		if err != nil || string(got.GetPayload().GetBody()) != msg {
			t.Fatalf("message %d: %q %v", i, got.GetPayload().GetBody(), err)
		}
	}
	stream.CloseSend()
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}

	// Server streaming: a status change reaches a watcher.
	watch, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v %v", r, err)
	}
	m.grpc.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch update: %v %v", r, err)
	}
}

func TestMeshTCP(t *testing.T) {
	m := newMesh(t)
	c, err := net.Dial("tcp", m.local[svcEcho])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := strings.Repeat("ping ", 20000)
	go func() {
		io.WriteString(c, payload)
		// Half-close: the echo app answers everything, then closes its side.
		c.(*net.TCPConn).CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != payload {
		t.Fatalf("echo returned %d bytes, want %d", len(got), len(payload))
	}
}

func TestMeshSwapDuringSlowRequest(t *testing.T) {
	m := newMesh(t)
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		res, err := h1Client(t).Get("http://" + m.local[svcWeb] + "/slow?d=600ms")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		done <- result{res.StatusCode, string(b), err}
	}()
	<-m.web.slowStarted

	// Change the cluster itself (a new pool), its endpoints and its route.
	res := m.clientResources(t)
	name := xdsmeta.OutboundCluster(svcWeb.name, svcWeb.namespace)
	res.Clusters[name].ConnectTimeout.Seconds = 3
	res.Endpoints[name] = loadAssignment(t, name, m.inbound[svcWeb], m.inbound[svcWeb])
	res.Routes[name].VirtualHosts[0].Routes = append(res.Routes[name].VirtualHosts[0].Routes, routeToCluster("elsewhere"))
	if err := m.client.Apply(res); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "slow done" {
		t.Fatalf("slow request across a swap: %d %q %v", r.code, r.body, r.err)
	}
	if _, body := get(t, h1Client(t), "http://"+m.local[svcWeb]+"/after"); body != "GET " {
		t.Fatalf("after the swap: %q", body)
	}
}

func TestMeshDrain(t *testing.T) {
	m := newMesh(t)
	server := m.servers[svcWeb]
	inbound := m.inbound[svcWeb]

	var wg sync.WaitGroup
	wg.Add(1)
	var code int
	var body string
	go func() {
		defer wg.Done()
		res, err := h1Client(t).Get("http://" + m.local[svcWeb] + "/slow?d=700ms")
		if err != nil {
			t.Error(err)
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		code, body = res.StatusCode, string(b)
	}()
	<-m.web.slowStarted

	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		drained <- server.Drain(ctx)
	}()
	// New connections are refused while the request is still in flight.
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", inbound, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the draining listener still accepts connections")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-drained:
		t.Fatalf("drain returned before the request finished: %v", err)
	default:
	}
	wg.Wait()
	if code != 200 || body != "slow done" {
		t.Fatalf("in-flight request during drain: %d %q", code, body)
	}
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if err := server.Apply(emptyResources()); !errors.Is(err, ErrDraining) {
		t.Fatalf("apply after drain: %v", err)
	}
}
