package runtime

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestListenerServers checks which server serves which connection —
// HTTP/1.1 the lean one, h2c with prior knowledge net/http's, and between
// the proxies HTTP/1.1 and HTTP/2 over TLS by ALPN — and that the
// active-connections gauge counts each connection once, handed over or not.
func TestListenerServers(t *testing.T) {
	m := newMesh(t)
	base := "http://" + m.local[svcWeb]
	outbound := map[string]string{"direction": "outbound"}
	waitGauge := func(want float64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := metric(t, m, "weft_active_connections", outbound)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("weft_active_connections = %v, want %v", got, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitGauge(0)

	h1 := h1Client(t)
	for range 3 {
		res, body := get(t, h1, base+"/echo")
		if res.Proto != "HTTP/1.1" || body != "GET " || res.Header.Get("X-Seen-Proto") != "HTTP/1.1" {
			t.Fatalf("HTTP/1.1: %s %q %v", res.Proto, body, res.Header)
		}
	}
	h2c := h2cClient(t)
	for range 3 {
		res, body := get(t, h2c, base+"/echo")
		if res.Proto != "HTTP/2.0" || body != "GET " {
			t.Fatalf("h2c: %s %q", res.Proto, body)
		}
	}
	// One kept-alive connection per client.
	waitGauge(2)
	h1.CloseIdleConnections()
	h2c.CloseIdleConnections()
	waitGauge(0)

	// The server-side proxy got both over mutual TLS: HTTP/1.1 (ALPN
	// http/1.1, the lean server) and HTTP/2 (ALPN h2, net/http's).
	if got := metricIn(t, m.serverReg[svcWeb], "weft_requests_total", map[string]string{"direction": "inbound"}); got != 6 {
		t.Fatalf("inbound requests = %v, want 6", got)
	}
}

// TestListenerDrainHTTP1 checks that a drain closes idle HTTP/1.1
// connections at once and lets a request in flight finish, with
// "Connection: close".
func TestListenerDrainHTTP1(t *testing.T) {
	m := newMesh(t)
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", m.local[svcWeb])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, bufio.NewReader(c)
	}
	idle, idleR := dial()
	io.WriteString(idle, "GET /echo HTTP/1.1\r\nHost: web\r\n\r\n")
	res, err := http.ReadResponse(idleR, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)

	busy, busyR := dial()
	io.WriteString(busy, "GET /slow?d=300ms HTTP/1.1\r\nHost: web\r\n\r\n")
	<-m.web.slowStarted

	drained := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		drained <- m.client.Drain(ctx)
	}()
	if _, err := idleR.ReadByte(); err != io.EOF {
		t.Fatalf("the idle connection should be closed by the drain, read: %v", err)
	}
	res, err = http.ReadResponse(busyR, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if string(body) != "slow done" || !res.Close {
		t.Fatalf("in-flight request: %q, close=%v", body, res.Close)
	}
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("drain took %v", d)
	}
	if got := metric(t, m, "weft_active_connections", map[string]string{"direction": "outbound"}); got != 0 {
		t.Fatalf("weft_active_connections = %v after the drain", got)
	}
}
