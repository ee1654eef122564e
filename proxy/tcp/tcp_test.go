package tcp

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/testnet"
)

// wrapped hides *net.TCPConn, as a TLS connection would.
type wrapped struct{ net.Conn }

func (w wrapped) CloseWrite() error { return w.Conn.(*net.TCPConn).CloseWrite() }

func TestPipeHalfClose(t *testing.T) {
	for _, splice := range []bool{true, false} {
		name := "buffered"
		if splice {
			name = "splice"
		}
		t.Run(name, func(t *testing.T) {
			client, proxyDown := testnet.TCPPair(t)
			proxyUp, server := testnet.TCPPair(t)
			var down, up net.Conn = proxyDown, proxyUp
			if !splice {
				down, up = wrapped{proxyDown}, wrapped{proxyUp}
			}
			done := make(chan struct{})
			go func() { Pipe(down, up); close(done) }()

			// The server echoes until the client half-closes, then answers and closes.
			go func() {
				b, _ := io.ReadAll(server)
				io.WriteString(server, "got "+string(b))
				server.Close()
			}()
			payload := strings.Repeat("x", 100000)
			io.WriteString(client, payload)
			client.CloseWrite()
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			reply, err := io.ReadAll(client)
			if err != nil || string(reply) != "got "+payload {
				t.Fatalf("reply %d bytes, %v", len(reply), err)
			}
			client.Close()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Pipe did not return")
			}
		})
	}
}

func TestPipeAbortClosesBoth(t *testing.T) {
	client, down := testnet.TCPPair(t)
	up, server := testnet.TCPPair(t)
	done := make(chan struct{})
	go func() { Pipe(down, up); close(done) }()
	server.SetLinger(0)
	server.Close() // a reset, not an orderly close
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(client); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("client read: %v", err)
	}
	client.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Pipe did not return")
	}
}

func TestSessions(t *testing.T) {
	s := NewSessions()
	a, b := testnet.TCPPair(t)
	done, ok := s.Add(a, b)
	if !ok || s.Len() != 1 {
		t.Fatalf("Add: ok=%v len=%d", ok, s.Len())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Wait(ctx); err == nil {
		t.Fatal("Wait returned with a session open")
	}
	go done()
	if err := s.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}

	c, d := testnet.TCPPair(t)
	s.Add(c)
	s.CloseAll()
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("CloseAll left a connection open")
	}
	if _, ok := s.Add(d); ok {
		t.Fatal("Add after CloseAll succeeded")
	}
	d.Close()
	if SessionsFrom(WithSessions(context.Background(), s)) != s {
		t.Fatal("context round trip")
	}
}
