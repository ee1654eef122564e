package apps

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain fails the run if any app left a goroutine behind: every app must
// stop all it started before Run returns.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to d for goroutines of this package, gRPC or
// net/http connections to end, and returns the stacks of those that did not.
func leakedGoroutines(d time.Duration) string {
	suspect := []string{"weft/demo/apps.", "google.golang.org/grpc", "net/http.(*persistConn)", "net/http.(*conn).serve"}
	var leaked []string
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaked = leaked[:0]
		// The first stack is this goroutine's own.
		for _, g := range strings.Split(string(buf), "\n\n")[1:] {
			if slices.ContainsFunc(suspect, func(s string) bool { return strings.Contains(g, s) }) {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
	}
}

// lines collects an app's output line by line and lets a test wait for one.
type lines struct {
	mu      sync.Mutex
	partial []byte
	done    []string
	changed chan struct{} // closed and replaced when a line completes
}

func newLines() *lines { return &lines{changed: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := slices.Index(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.done = append(l.done, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

// wait returns the first line containing substr, waiting for it if need be.
func (l *lines) wait(t *testing.T, substr string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		i := slices.IndexFunc(l.done, func(s string) bool { return strings.Contains(s, substr) })
		line, changed := "", l.changed
		if i >= 0 {
			line = l.done[i]
		}
		l.mu.Unlock()
		if i >= 0 {
			return line
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no line containing %q; output so far:\n%s", substr, l)
		}
	}
}

// count returns how many lines contain substr.
func (l *lines) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.done {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.done, "\n")
}

// running is an app started in-process by start.
type running struct {
	addr string
	out  *lines
	stop func() error // cancels the app and returns what Run returned
}

// start runs the app until the test ends and waits for its listening line.
func start(t *testing.T, name string, args ...string) *running {
	t.Helper()
	r := launch(t, name, args...)
	line := r.out.wait(t, "listening on ")
	addr, ok := ListenAddr(line)
	if !ok {
		t.Fatalf("ListenAddr(%q) found no address", line)
	}
	r.addr = addr
	return r
}

// launch runs the app until the test ends, without waiting for anything.
func launch(t *testing.T, name string, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := newLines()
	result := make(chan error, 1)
	go func() { result <- Run(ctx, name, args, out) }()
	r := &running{out: out, stop: sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-result:
			return err
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s did not stop within 10s", name)
		}
	})}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("%s: Run returned %v", name, err)
		}
	})
	return r
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestNames(t *testing.T) {
	want := []string{"cache", "catalog", "frontend", "ledger", "loadgen"}
	if got := Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}

func TestRunUnknownApp(t *testing.T) {
	err := Run(context.Background(), "nope", nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `"nope" unknown`) {
		t.Errorf("Run(nope) = %v, want an unknown-app error", err)
	}
}

func TestListenAddr(t *testing.T) {
	tests := []struct {
		line, want string
		ok         bool
	}{
		{"catalog: listening on 127.0.0.1:43123 (version v1, fail-rate 0)", "127.0.0.1:43123", true},
		{"listening on [::1]:80", "[::1]:80", true},
		{"cache: shutting down", "", false},
		{"ledger: listening on ", "", false},
	}
	for _, tt := range tests {
		got, ok := ListenAddr(tt.line)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

// TestBadFlags checks that every app refuses bad flags before it binds or
// sends anything.
func TestBadFlags(t *testing.T) {
	tests := []struct {
		app  string
		args []string
		want string
	}{
		{"catalog", []string{"--fail-rate", "1.5"}, "--fail-rate"},
		{"catalog", []string{"--nope"}, "not defined"},
		{"catalog", []string{"extra"}, "unexpected arguments"},
		{"ledger", []string{"--listen", "not-an-address"}, "not-an-address"},
		{"cache", []string{"--listen"}, "needs an argument"},
		{"frontend", []string{"--catalog", "http://127.0.0.1:1"}, "required"},
		{"frontend", []string{"--catalog", "127.0.0.1:1", "--ledger", "x:1", "--cache", "x:2"}, "--catalog"},
		{"frontend", []string{"--catalog", "http://127.0.0.1:1", "--ledger", "x:1", "--cache", "x:2", "--cache-conns", "0"}, "--cache-conns"},
		{"loadgen", nil, "--target"},
		{"loadgen", []string{"--target", "http://127.0.0.1:1", "--rps", "0"}, "--rps"},
		{"loadgen", []string{"--target", "http://127.0.0.1:1", "--report", "0s"}, "--report"},
	}
	for _, tt := range tests {
		err := Run(context.Background(), tt.app, tt.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %q: Run = %v, want an error mentioning %q", tt.app, tt.args, err, tt.want)
		}
	}
}
