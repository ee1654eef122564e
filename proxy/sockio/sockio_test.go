package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/testnet"
)

// pair returns a wrapped client end and the plain server end of a loopback
// TCP connection.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	c, s := testnet.TCPPair(t)
	return Wrap(c), s
}

func TestReadWriteBothWays(t *testing.T) {
	c, s := pair(t)
	// Larger than the socket buffers, so writes wait for the poller.
	big := bytes.Repeat([]byte("weft"), 4<<20)
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(big)
		done <- err
	}()
	got, err := io.ReadAll(io.LimitReader(s, int64(len(big))))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("server read %d bytes, not what was written", len(got))
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}

	go func() { _, _ = s.Write(big); s.Close() }()
	got, err = io.ReadAll(c)
	if err != nil {
		t.Fatalf("read to EOF: %v", err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("client read %d bytes, not what was written", len(got))
	}
	if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestDeadlineAndClose(t *testing.T) {
	c, _ := pair(t)
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline = %v; want a timeout wrapping os.ErrDeadlineExceeded", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("read error %v is not a read OpError", err)
	}

	c.Close()
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close = %v; want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close = %v; want net.ErrClosed", err)
	}
}

func TestResetIsASyscallError(t *testing.T) {
	c, s := pair(t)
	// Close with unread data sends RST.
	if _, err := c.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	s.(*net.TCPConn).SetLinger(0)
	s.Close()
	_, err := c.Read(make([]byte, 8))
	var se *os.SyscallError
	if !errors.As(err, &se) {
		t.Fatalf("read after reset = %v; want an *os.SyscallError", err)
	}
}

func TestWrapKeepsSocket(t *testing.T) {
	c, _ := pair(t)
	s, ok := c.(interface{ Socket() *net.TCPConn })
	if !ok || s.Socket() == nil {
		t.Skip("no raw system calls on this platform")
	}
	if _, ok := c.(interface{ CloseWrite() error }); !ok {
		t.Fatal("a wrapped connection lost CloseWrite")
	}
}

// TestConcurrentWriters checks that writes from several goroutines arrive
// whole (the race detector checks the shared state).
func TestConcurrentWriters(t *testing.T) {
	c, s := pair(t)
	const writers, each = 4, 200
	msg := bytes.Repeat([]byte("x"), 1000)
	done := make(chan error, writers)
	for range writers {
		go func() {
			for range each {
				if _, err := c.Write(msg); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	got, err := io.ReadAll(io.LimitReader(s, int64(writers*each*len(msg))))
	if err != nil {
		t.Fatal(err)
	}
	for range writers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != writers*each*len(msg) {
		t.Fatalf("read %d bytes, want %d", len(got), writers*each*len(msg))
	}
}
