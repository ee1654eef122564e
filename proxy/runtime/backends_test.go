package runtime

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/internal/testpki"
	"github.com/weftmesh/weft/proxy/tlsx"
)

// Loopback addresses of the test topology.
const (
	clientIP  = "127.0.0.1" // the client-side proxy's local listeners
	serverIP  = "127.0.0.2" // server-side proxies' inbound listeners
	backendIP = "127.0.0.3" // the apps
)

// rotatingIdentity is an Identity whose SVID tests can replace.
type rotatingIdentity struct {
	cur atomic.Pointer[tls.Certificate]
}

func newIdentity(t testing.TB, ca *testpki.CA, s service) *rotatingIdentity {
	id := &rotatingIdentity{}
	c := ca.Issue(t, s.id(), testpki.Options{})
	id.cur.Store(&c)
	return id
}

func (i *rotatingIdentity) Certificate() *tls.Certificate { return i.cur.Load() }

var _ tlsx.Identity = (*rotatingIdentity)(nil)

func listen(t testing.TB, ip string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// webApp is an HTTP/1.1 app: it echoes what it received, streams, sends
// trailers, answers slowly, and echoes WebSocket bytes.
type webApp struct {
	addr string
	// slowStarted receives a value when a /slow request arrives.
	slowStarted chan struct{}
	// release lets /stream send its second chunk.
	release chan struct{}
}

func startWebApp(t testing.TB) *webApp {
	ln := listen(t, backendIP)
	app := &webApp{addr: ln.Addr().String(), slowStarted: make(chan struct{}, 16), release: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Proto", r.Proto)
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Path", r.URL.RequestURI())
		w.Header().Set("X-Seen-Forwarded-Proto", r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Seen-Request-Id", r.Header.Get("X-Request-Id"))
		w.Header().Set("X-Seen-Hop", r.Header.Get("X-Hop")+r.Header.Get("Keep-Alive"))
		w.Header().Set("X-Seen-User-Agent", r.Header.Get("User-Agent"))
		fmt.Fprintf(w, "%s %s", r.Method, body)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		app.slowStarted <- struct{}{}
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		io.WriteString(w, "slow done")
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-app.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: second\n\n")
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})
	mux.HandleFunc("/ws", wsEcho)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return app
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsEcho completes a WebSocket handshake and echoes raw bytes: framing is
// the endpoints' business, the proxy only splices.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "not an upgrade", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		wsAccept(r.Header.Get("Sec-WebSocket-Key")))
	brw.Flush()
	buf := make([]byte, 1024)
	for {
		n, err := brw.Read(buf)
		if n > 0 {
			if _, err := conn.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// grpcApp serves the health service and an echoing test service over h2c.
type grpcApp struct {
	addr   string
	health *health.Server
}

type testService struct {
	testgrpc.UnimplementedTestServiceServer
}

func (testService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "kept"))
	if s := req.GetResponseStatus(); s != nil {
		return nil, status.Error(codes.Code(s.GetCode()), s.GetMessage())
	}
	return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (testService) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

func startGRPCApp(t testing.TB) *grpcApp {
	ln := listen(t, backendIP)
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	testgrpc.RegisterTestServiceServer(srv, testService{})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return &grpcApp{addr: ln.Addr().String(), health: hs}
}

// startEchoApp echoes each TCP connection until the client half-closes,
// then half-closes its side.
func startEchoApp(t testing.TB) string {
	ln := listen(t, backendIP)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				// Wait for the client to close so that the close is seen as orderly.
				io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// wsHandshake sends a WebSocket upgrade to addr and returns the connection
// after a 101.
func wsHandshake(t testing.TB, addr, host string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", host, key)
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		t.Fatalf("websocket handshake: %v", err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		t.Fatalf("websocket handshake: status %d (x-weft-error %q)", res.StatusCode, res.Header.Get("X-Weft-Error"))
	}
	if got, want := res.Header.Get("Sec-WebSocket-Accept"), wsAccept(key); got != want {
		t.Errorf("Sec-WebSocket-Accept = %q, want %q", got, want)
	}
	return c, br
}
