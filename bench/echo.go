package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// The harness starts its echo server by running its own executable again
// with roleEnv=echo, so the server is a process of its own: it can be
// pinned to a core and its CPU is not the harness's. (TestMain does the
// same for the test binary.)
const (
	roleEnv     = "WEFT_BENCH_ROLE"
	roleAddrEnv = "WEFT_BENCH_ADDR"
)

// runRole runs the role named by roleEnv and returns the exit status.
func runRole() int {
	switch r := os.Getenv(roleEnv); r {
	case "echo":
		if err := serveEcho(os.Getenv(roleAddrEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "echo:", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown %s %q\n", roleEnv, r)
		return 2
	}
}

// serveEcho answers every request with its body (HTTP/1.1 and h2c) until
// SIGTERM or SIGINT.
func serveEcho(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           http.HandlerFunc(echo),
		Protocols:         &protos,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// echo answers with the request body. It reads the whole body before
// writing: an HTTP/1.1 handler may not read the body once it has responded.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body) // a write error means the client left; nothing to tell it
}
