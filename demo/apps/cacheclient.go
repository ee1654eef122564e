package apps

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// cacheClient speaks the cache line protocol over at most size pooled
// connections; a caller waits for a free one rather than dialing more.
type cacheClient struct {
	addr   string
	dialer net.Dialer

	// slots holds one entry per permitted connection: nil until dialed.
	slots chan *cacheConn

	mu     sync.Mutex
	closed bool
}

type cacheConn struct {
	net.Conn
	r *bufio.Reader
}

func newCacheClient(addr string, size int) *cacheClient {
	c := &cacheClient{
		addr:   addr,
		dialer: net.Dialer{Timeout: 2 * time.Second},
		slots:  make(chan *cacheConn, size),
	}
	for range size {
		c.slots <- nil
	}
	return c
}

// errCacheClosed is returned once the client has been closed.
var errCacheClosed = errors.New("cache client closed")

// Get returns the value under key and whether it was there.
func (c *cacheClient) Get(ctx context.Context, key string) (string, bool, error) {
	if !validKey(key) {
		return "", false, fmt.Errorf("GET: invalid key %q", key)
	}
	reply, err := c.do(ctx, "GET "+key)
	switch {
	case err != nil:
		return "", false, err
	case reply == "MISS":
		return "", false, nil
	case strings.HasPrefix(reply, "VALUE "):
		return strings.TrimPrefix(reply, "VALUE "), true, nil
	default:
		return "", false, fmt.Errorf("GET: unexpected reply %q", reply)
	}
}

// Set stores value under key.
func (c *cacheClient) Set(ctx context.Context, key, value string) error {
	if !validKey(key) || strings.Contains(value, "\n") {
		return fmt.Errorf("SET: invalid key %q or value with a newline", key)
	}
	reply, err := c.do(ctx, "SET "+key+" "+value)
	if err == nil && reply != "OK" {
		err = fmt.Errorf("SET: unexpected reply %q", reply)
	}
	return err
}

// do sends one command and returns the reply line. A pooled connection may
// have been closed by the far end since its last use, so a failure on one
// is retried once on a fresh connection.
func (c *cacheClient) do(ctx context.Context, cmd string) (string, error) {
	for attempt := 0; ; attempt++ {
		conn, reused, err := c.get(ctx)
		if err != nil {
			return "", err
		}
		reply, err := conn.roundTrip(ctx, cmd)
		if err != nil {
			conn.Close()
			c.put(nil)
			if reused && attempt == 0 && ctx.Err() == nil {
				continue
			}
			return "", err
		}
		c.put(conn)
		if msg, ok := strings.CutPrefix(reply, "ERR "); ok {
			verb, _, _ := strings.Cut(cmd, " ")
			return "", fmt.Errorf("%s: cache replied %s", verb, msg)
		}
		return reply, nil
	}
}

// get takes a slot, dialing if it holds no connection yet.
func (c *cacheClient) get(ctx context.Context) (conn *cacheConn, reused bool, err error) {
	select {
	case conn = <-c.slots:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		c.put(conn)
		return nil, false, errCacheClosed
	}
	if conn != nil {
		return conn, true, nil
	}
	nc, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		c.put(nil)
		return nil, false, err
	}
	return &cacheConn{Conn: nc, r: bufio.NewReader(nc)}, false, nil
}

// put returns a slot; after Close its connection is closed instead of kept.
// The send never blocks (a slot only comes back to where it was taken from)
// and happens under mu so that Close cannot miss it.
func (c *cacheClient) put(conn *cacheConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed && conn != nil {
		conn.Close()
		conn = nil
	}
	c.slots <- conn
}

// Close closes the idle connections now and the busy ones as they are
// returned.
func (c *cacheClient) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for range len(c.slots) {
		select {
		case conn := <-c.slots:
			if conn != nil {
				conn.Close()
			}
			c.slots <- nil
		default:
			return
		}
	}
}

// roundTrip writes cmd and reads one reply line, within ctx's deadline.
func (cc *cacheConn) roundTrip(ctx context.Context, cmd string) (string, error) {
	deadline, _ := ctx.Deadline() // zero: no deadline
	if err := cc.SetDeadline(deadline); err != nil {
		return "", err
	}
	if _, err := cc.Write([]byte(cmd + "\n")); err != nil {
		return "", err
	}
	return readLine(cc.r, cacheMaxLine)
}
