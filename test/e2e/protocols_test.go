package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

const protocolServices = `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: greeter}
spec:
  ports: [{name: grpc, port: 9000, protocol: grpc}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: echo}
spec:
  ports: [{name: tcp, port: 7000, protocol: tcp}]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  ports: [{name: http, port: 8080, protocol: http}]
`

// TestProtocols sends HTTP/1.1, h2c, gRPC (unary, streaming, trailers),
// WebSocket and opaque TCP through a client sidecar and a server sidecar.
func TestProtocols(t *testing.T) {
	cp := startControl(t, controlOpts{})
	cp.apply(t, protocolServices)

	// gRPC app: the standard health service, which streams (Watch) and
	// reports errors in trailers (Check of an unknown service).
	grpcIP := nextIP()
	gl, err := net.Listen("tcp", grpcIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("greeter", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)

	// TCP app: echo until the client half-closes, then close.
	echoIP := nextIP()
	el, err := net.Listen("tcp", echoIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { el.Close() })
	go func() {
		for {
			c, err := el.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()

	// HTTP app with a WebSocket-style upgrade that echoes raw bytes.
	webIP := nextIP()
	web := startBackend(t, webIP, "web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			rw.Flush()
			io.Copy(conn, rw)
			return
		}
		w.Header().Set("x-proto", r.Proto)
		io.WriteString(w, "web "+r.Proto)
	}))

	startSidecar(t, cp, sidecarOpts{service: "greeter", app: gl.Addr().String(), ip: grpcIP}).waitReady(t)
	startSidecar(t, cp, sidecarOpts{service: "echo", app: el.Addr().String(), ip: echoIP}).waitReady(t)
	startSidecar(t, cp, sidecarOpts{service: "web", app: web.addr, ip: webIP}).waitReady(t)
	client := startSidecar(t, cp, sidecarOpts{service: "client", upstreams: []string{"greeter", "echo", "web"}}).waitReady(t)
	waitEndpoints(t, client, "greeter", "echo", "web")

	t.Run("http1", func(t *testing.T) {
		code, body, _ := get(t, http.DefaultClient, "http://"+client.upstreams["web"]+"/")
		if code != 200 || body != "web HTTP/1.1" {
			t.Fatalf("got %d %q", code, body)
		}
	})
	t.Run("h2c", func(t *testing.T) {
		c := &http.Client{Transport: &http2.Transport{AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}}
		resp, err := c.Get("http://" + client.upstreams["web"] + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("got %s %d", resp.Proto, resp.StatusCode)
		}
	})
	t.Run("grpc", func(t *testing.T) {
		conn, err := grpc.NewClient(client.upstreams["greeter"], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		hc := healthpb.NewHealthClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "greeter"})
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check: %v %v", r, err)
		}
		// Trailers: an error status travels in grpc-status/grpc-message.
		_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("Check(nope): %v, want NotFound from the trailers", err)
		}
		// Server streaming: the initial status, then a change pushed by the app.
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "greeter"})
		if err != nil {
			t.Fatal(err)
		}
		first, err := w.Recv()
		if err != nil || first.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Watch first: %v %v", first, err)
		}
		hs.SetServingStatus("greeter", healthpb.HealthCheckResponse_NOT_SERVING)
		second, err := w.Recv()
		if err != nil || second.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("Watch second: %v %v", second, err)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		c, err := net.Dial("tcp", client.upstreams["web"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: web\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		for _, msg := range []string{"hello", "over the mesh"} {
			io.WriteString(c, msg)
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
				t.Fatalf("echo %q: got %q %v", msg, buf, err)
			}
		}
	})
	t.Run("tcp", func(t *testing.T) {
		c, err := net.Dial("tcp", client.upstreams["echo"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		payload := strings.Repeat("opaque bytes ", 10000)
		go func() {
			io.WriteString(c, payload)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != payload {
			t.Fatalf("echo: %d bytes, want %d: %v", len(got), len(payload), err)
		}
	})
}

// waitEndpoints waits until the sidecar has endpoints for every service.
func waitEndpoints(t testing.TB, s *sidecar, services ...string) {
	t.Helper()
	eventually(t, 10*time.Second, "endpoints for "+strings.Join(services, ","), func() error {
		c := s.adminGet(t, "/clusters")
		for _, svc := range services {
			if !clusterHasEndpoint(c, "outbound|"+svc+".default", "") {
				return errorf("no endpoint for %s in:\n%s", svc, c)
			}
		}
		return nil
	})
}
