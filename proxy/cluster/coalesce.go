package cluster

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// maxCoalesced bounds the bytes a CoalescingConn holds back, and so the
// size of its two buffers; a write that would pass it goes out at once,
// after what is pending.
const maxCoalesced = 64 << 10

// CoalescingConn defers writes until the goroutines that are ready to run
// have had their turn, then sends what they wrote in one write. net/http
// flushes an HTTP/2 HEADERS frame and the DATA frame that follows it
// separately, and an HTTP/1.1 request head before its body; over loopback
// every write is a system call that also runs the peer's receive path and
// wakes it, which costs more than the proxy's own work on a request.
//
// A write error is returned by the next Write and closes the connection, so
// that readers see it too. Bytes written before a write deadline changes
// leave under the old one, as they would have without coalescing: TLS's
// Close sends close_notify and then sets a deadline in the past. Close sends
// what is pending first.
type CoalescingConn struct {
	net.Conn

	mu        sync.Mutex
	buf       []byte // bytes waiting for the flush
	spare     []byte // the other buffer, reused batch after batch
	scheduled bool   // a flush is on its way
	direct    bool   // writes go straight out (Direct)
	closed    bool
	err       error

	// wmu is held while writing to Conn: batches leave in order.
	wmu sync.Mutex
}

// Coalesce wraps c so that writes made back to back leave together.
func Coalesce(c net.Conn) *CoalescingConn { return &CoalescingConn{Conn: c} }

// Direct makes every later Write go straight out, after what is pending,
// without waiting for a flush: for a protocol that writes each message in
// one call (HTTP/1.1 as this proxy speaks it), batching would only cost a
// goroutine and a turn behind every goroutine that is ready to run, which
// shows in the latency tail. A TLS connection is wrapped before its
// handshake says which protocol it carries.
func (c *CoalescingConn) Direct() {
	c.mu.Lock()
	c.direct = true
	c.mu.Unlock()
}

// Write queues p for the next batch; it blocks only when the batch is full.
func (c *CoalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if err := c.errLocked(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	if c.direct || len(c.buf)+len(p) > maxCoalesced {
		c.mu.Unlock()
		return c.writeThrough(p)
	}
	c.buf = append(c.buf, p...)
	if !c.scheduled {
		c.scheduled = true
		go c.flush()
	}
	c.mu.Unlock()
	return len(p), nil
}

func (c *CoalescingConn) errLocked() error {
	if c.err != nil {
		return c.err
	}
	if c.closed {
		return net.ErrClosed
	}
	return nil
}

// flush sends the pending batch once the goroutines that were ready when it
// was scheduled have run: those that answer the same event write their
// frames into the same batch.
func (c *CoalescingConn) flush() {
	runtime.Gosched()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.send()
}

// send writes the pending batch; wmu must be held. Writes made meanwhile
// go to the other buffer, and the two are reused batch after batch.
func (c *CoalescingConn) send() {
	c.mu.Lock()
	b := c.buf
	c.buf, c.spare = c.spare, nil
	c.scheduled = false
	failed := c.err != nil
	c.mu.Unlock()
	if len(b) > 0 && !failed {
		if _, err := c.Conn.Write(b); err != nil {
			c.fail(err)
		}
	}
	if cap(b) == 0 {
		return
	}
	c.mu.Lock()
	if c.buf == nil {
		c.buf = b[:0]
	} else if c.spare == nil {
		c.spare = b[:0]
	}
	c.mu.Unlock()
}

// writeThrough sends the pending batch and p at once.
func (c *CoalescingConn) writeThrough(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.send()
	c.mu.Lock()
	err := c.errLocked()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.fail(err)
	}
	return n, err
}

func (c *CoalescingConn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.Conn.Close()
}

// closeFlushTimeout bounds how long Close waits for a batch being written
// to a peer that stopped reading.
const closeFlushTimeout = time.Second

// Close sends what is pending and closes the connection. A batch being
// written is allowed to finish, for closeFlushTimeout at most.
func (c *CoalescingConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	if !c.wmu.TryLock() {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		c.wmu.Lock()
	}
	c.send()
	c.wmu.Unlock()
	return c.Conn.Close()
}

// SetWriteDeadline sends what is pending under the current deadline, then
// sets the new one. A batch being written (to a peer that stopped reading,
// say) gets the new deadline at once, as a blocked Write would.
func (c *CoalescingConn) SetWriteDeadline(t time.Time) error {
	if c.wmu.TryLock() {
		defer c.wmu.Unlock()
		c.send()
	}
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines, the write one as SetWriteDeadline does.
func (c *CoalescingConn) SetDeadline(t time.Time) error {
	if c.wmu.TryLock() {
		defer c.wmu.Unlock()
		c.send()
	}
	return c.Conn.SetDeadline(t)
}

var _ net.Conn = (*CoalescingConn)(nil)
