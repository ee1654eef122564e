package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/testnet"
)

// recordingConn records each Write it receives.
type recordingConn struct {
	net.Conn // nil: only Write and Close are used

	mu     sync.Mutex
	writes [][]byte
	fail   error
	closed bool
	// block, when set, holds every Write until it is closed or a write
	// deadline passes.
	block     chan struct{}
	blockOnce sync.Once
}

func (c *recordingConn) SetWriteDeadline(t time.Time) error {
	if c.block != nil {
		time.AfterFunc(time.Until(t), func() {
			c.mu.Lock()
			c.fail = os.ErrDeadlineExceeded
			c.mu.Unlock()
			c.unblock()
		})
	}
	return nil
}

func (c *recordingConn) unblock() { c.blockOnce.Do(func() { close(c.block) }) }

func (c *recordingConn) Write(p []byte) (int, error) {
	if c.block != nil {
		<-c.block
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordingConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *recordingConn) snapshot() (writes int, all []byte, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.writes), bytes.Join(c.writes, nil), c.closed
}

// waitFor polls until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCoalesceBackToBackWrites(t *testing.T) {
	rec := &recordingConn{}
	c := Coalesce(rec)
	// Whether the flush goroutine runs before the second Write is up to the
	// scheduler (another P may take it at once), so hold the batch back the
	// way a write in progress does: every Write made meanwhile must join it.
	c.wmu.Lock()
	for _, s := range []string{"HEADERS", "DATA", "DATA-END"} {
		if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if n, _, _ := rec.snapshot(); n != 0 {
		t.Fatalf("%d writes before the batch was released", n)
	}
	c.wmu.Unlock()
	waitFor(t, "the batch is sent", func() bool { n, _, _ := rec.snapshot(); return n > 0 })
	n, all, _ := rec.snapshot()
	if string(all) != "HEADERSDATADATA-END" {
		t.Fatalf("sent %q", all)
	}
	// The three writes were pending together: they leave together.
	if n != 1 {
		t.Errorf("%d writes, want 1", n)
	}
}

func TestCoalesceKeepsOrder(t *testing.T) {
	rec := &recordingConn{}
	c := Coalesce(rec)
	var want bytes.Buffer
	big := bytes.Repeat([]byte("B"), maxCoalesced+1)
	for i := range 2000 {
		p := fmt.Appendf(nil, "<%d>", i)
		if i%500 == 250 {
			// Larger than a batch: written through, after what is pending.
			p = big
		}
		want.Write(p)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			time.Sleep(time.Microsecond) // let some batches leave
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, all, closed := rec.snapshot()
	if !bytes.Equal(all, want.Bytes()) {
		t.Fatalf("sent %d bytes out of order or incomplete, want %d", len(all), want.Len())
	}
	if !closed {
		t.Fatal("Close did not close the connection")
	}
}

func TestCoalesceConcurrentWriters(t *testing.T) {
	rec := &recordingConn{}
	c := Coalesce(rec)
	const writers, each = 8, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Every record is written whole: its bytes stay together.
				if _, err := c.Write(fmt.Appendf(nil, "[%d.%d]", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	c.Close()
	_, all, _ := rec.snapshot()
	next := make([]int, writers)
	for _, rec := range bytes.SplitAfter(all, []byte("]")) {
		if len(rec) == 0 {
			continue
		}
		var w, i int
		if _, err := fmt.Sscanf(string(rec), "[%d.%d]", &w, &i); err != nil {
			t.Fatalf("torn record %q: %v", rec, err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: record %d after %d", w, i, next[w]-1)
		}
		next[w]++
	}
	for w, n := range next {
		if n != each {
			t.Errorf("writer %d: %d records arrived, want %d", w, n, each)
		}
	}
}

func TestCoalesceWriteError(t *testing.T) {
	boom := errors.New("boom")
	rec := &recordingConn{fail: boom}
	c := Coalesce(rec)
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatalf("first Write: %v (the error shows on a later one)", err)
	}
	waitFor(t, "the failed batch closes the connection", func() bool { _, _, closed := rec.snapshot(); return closed })
	if _, err := c.Write([]byte("after")); !errors.Is(err, boom) {
		t.Fatalf("Write after a failed batch: %v, want %v", err, boom)
	}
}

func TestCoalesceClose(t *testing.T) {
	t.Run("sends what is pending", func(t *testing.T) {
		rec := &recordingConn{}
		c := Coalesce(rec)
		c.Write([]byte("GOAWAY"))
		c.Close()
		if _, all, closed := rec.snapshot(); string(all) != "GOAWAY" || !closed {
			t.Fatalf("sent %q, closed %v", all, closed)
		}
		if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write after Close: %v", err)
		}
	})
	t.Run("cuts a blocked write short", func(t *testing.T) {
		rec := &recordingConn{block: make(chan struct{})}
		c := Coalesce(rec)
		done := make(chan error, 1)
		go func() {
			_, err := c.Write(bytes.Repeat([]byte("x"), maxCoalesced+1)) // written through, blocks
			done <- err
		}()
		time.Sleep(10 * time.Millisecond)
		start := time.Now()
		c.Close()
		if d := time.Since(start); d > closeFlushTimeout+time.Second {
			t.Fatalf("Close took %v", d)
		}
		if err := <-done; err == nil {
			t.Fatal("the blocked write succeeded on a closed connection")
		}
	})
}

// TestCoalesceDeadlineAppliesToLaterWrites follows what TLS's Close does:
// close_notify is written, then a deadline in the past makes any later
// write fail. The alert must still leave. It runs over TCP, as the proxy
// does: a batch already being written when the deadline moves is a write
// into the socket buffer, which a deadline does not cut short (over
// net.Pipe, whose writes wait for the reader, it would be).
func TestCoalesceDeadlineAppliesToLaterWrites(t *testing.T) {
	a, b := testnet.TCPPair(t)
	defer b.Close()
	got := make(chan []byte, 1)
	go func() {
		buf, _ := io.ReadAll(b)
		got <- buf
	}()
	c := Coalesce(a)
	if _, err := c.Write([]byte("close_notify")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWriteDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if buf := <-got; string(buf) != "close_notify" {
		t.Fatalf("peer got %q", buf)
	}
}

// TestCoalesceOverTCP runs a request and response over a real socket pair,
// the peer reading what the writer sent.
func TestCoalesceOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		io.Copy(s, s)
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := Coalesce(raw)
	defer c.Close()
	buf := make([]byte, 11)
	for range 100 {
		c.Write([]byte("hello "))
		c.Write([]byte("world"))
		// The read blocks: the batch leaves while this goroutine waits.
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello world" {
			t.Fatalf("echo %q %v", buf, err)
		}
	}
}

// TestCoalesceDirect: after Direct, a write is on the wire when Write
// returns, with what was pending before it, in order.
func TestCoalesceDirect(t *testing.T) {
	client, server := testnet.TCPPair(t)
	c := Coalesce(client)
	c.wmu.Lock() // hold the first batch back, as a write in progress does
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	c.Direct()
	done := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("b"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a direct write returned (%v) before the batch ahead of it left", err)
	case <-time.After(50 * time.Millisecond):
	}
	c.wmu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Both bytes are on the wire now: no flush goroutine is needed.
	c.mu.Lock()
	pending := len(c.buf)
	c.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d bytes still pending after a direct write", pending)
	}
	buf := make([]byte, 2)
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "ab" {
		t.Fatalf("read %q, %v; want \"ab\"", buf, err)
	}
}
