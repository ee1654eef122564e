package apps

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// dialCache opens a raw connection to the cache, closed with the test.
func dialCache(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func TestCacheProtocol(t *testing.T) {
	app := start(t, "cache", "--listen", "127.0.0.1:0")
	c, r := dialCache(t, app.addr)

	// One after another on one connection, so order matters.
	steps := []struct{ send, want string }{
		{"PING", "PONG"},
		{"GET colour", "MISS"},
		{"SET colour indigo", "OK"},
		{"GET colour", "VALUE indigo"},
		{"SET greeting hello, mesh world", "OK"},
		{"GET greeting", "VALUE hello, mesh world"},
		{"SET empty ", "OK"},
		{"GET empty", "VALUE "},
		{"set colour teal", "OK"},
		{"get colour\r", "VALUE teal"},
		{"", "ERR empty command"},
		{"DEL colour", `ERR unknown command "DEL"`},
		{"SET onlykey", "ERR usage: SET key value"},
		{"SET  value", "ERR usage: SET key value"},
		{"GET", "ERR usage: GET key"},
		{"GET two keys", "ERR usage: GET key"},
		{"PING now", "ERR usage: PING"},
		{"PING", "PONG"},
	}
	for _, s := range steps {
		if _, err := io.WriteString(c, s.send+"\n"); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", s.send, err)
		}
		if got != s.want+"\n" {
			t.Errorf("%q -> %q, want %q", s.send, got, s.want+"\n")
		}
	}
}

func TestCachePipelined(t *testing.T) {
	app := start(t, "cache")
	c, r := dialCache(t, app.addr)
	io.WriteString(c, "SET a 1\nSET b 2\nGET a\nGET b\nGET c\nPING\n")
	for _, want := range []string{"OK", "OK", "VALUE 1", "VALUE 2", "MISS", "PONG"} {
		got, err := r.ReadString('\n')
		if err != nil || got != want+"\n" {
			t.Fatalf("reply = %q, %v; want %q", got, err, want)
		}
	}
}

func TestCacheLineTooLong(t *testing.T) {
	app := start(t, "cache")
	c, r := dialCache(t, app.addr)
	go io.WriteString(c, "SET k "+strings.Repeat("x", cacheMaxLine)+"\n")
	if got, _ := r.ReadString('\n'); got != "ERR line too long\n" {
		t.Errorf("reply = %q, want ERR line too long", got)
	}
	if _, err := r.ReadByte(); err == nil {
		t.Error("connection still open after an over-long line")
	}
}

// TestCacheClosesConnectionsOnStop checks that stopping the cache closes
// idle client connections rather than waiting for them.
func TestCacheClosesConnectionsOnStop(t *testing.T) {
	app := start(t, "cache")
	_, r := dialCache(t, app.addr)
	app.out.wait(t, "opened")
	if err := app.stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("read after stop = %v, want EOF", err)
	}
}

// TestCacheClientPool checks that many concurrent callers share at most
// the pool's connections.
func TestCacheClientPool(t *testing.T) {
	app := start(t, "cache")
	client := newCacheClient(app.addr, 2)
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			key := string(rune('a' + i))
			if err := client.Set(ctx, key, "v"+key); err != nil {
				t.Error(err)
				return
			}
			if v, ok, err := client.Get(ctx, key); err != nil || !ok || v != "v"+key {
				t.Errorf("Get(%s) = %q, %v, %v; want v%s", key, v, ok, err, key)
			}
		})
	}
	wg.Wait()
	if n := app.out.count("opened"); n < 1 || n > 2 {
		t.Errorf("%d connections opened, want 1 or 2", n)
	}
	if _, ok, err := client.Get(ctx, "missing"); ok || err != nil {
		t.Errorf("Get(missing) = %v, %v; want a miss", ok, err)
	}
	// Either would smuggle a second command onto the connection.
	if err := client.Set(ctx, "bad key", "v"); err == nil {
		t.Error("Set with a space in the key succeeded")
	}
	if err := client.Set(ctx, "k", "v\nSET x y"); err == nil {
		t.Error("Set with a newline in the value succeeded")
	}
}

// TestCacheClientRedialsAfterRestart checks that a pooled connection the
// cache closed is replaced without failing the caller.
func TestCacheClientRedialsAfterRestart(t *testing.T) {
	first := start(t, "cache")
	client := newCacheClient(first.addr, 1)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	start(t, "cache", "--listen", first.addr)
	if _, ok, err := client.Get(ctx, "k"); err != nil || ok {
		t.Errorf("Get on the restarted (empty) cache = %v, %v; want a miss", ok, err)
	}
}

func FuzzCacheExec(f *testing.F) {
	for _, seed := range []string{"SET k v", "GET k", "PING", "", "set a b c", "GET", "\r", "SET \x00 x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.Contains(line, "\n") {
			t.Skip("a line never holds a newline")
		}
		s := newCacheStore()
		reply := s.exec(line)
		if strings.Count(reply, "\n") != 1 || !strings.HasSuffix(reply, "\n") {
			t.Fatalf("exec(%q) = %q, want exactly one line", line, reply)
		}
		word, _, _ := strings.Cut(reply, " ")
		switch strings.TrimSuffix(word, "\n") {
		case "OK", "VALUE", "MISS", "PONG", "ERR":
		default:
			t.Fatalf("exec(%q) = %q, not a protocol reply", line, reply)
		}
		// A SET that succeeded must be readable back.
		if reply == "OK\n" {
			_, rest, _ := strings.Cut(line, " ")
			key, value, _ := strings.Cut(rest, " ")
			if got := s.exec("GET " + key); got != "VALUE "+value+"\n" {
				t.Fatalf("after %q, GET %s = %q", line, key, got)
			}
		}
	})
}
