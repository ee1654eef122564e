// Package apps holds the demo workloads that `weft demo` runs behind sidecars:
// catalog (HTTP/1.1 JSON), ledger (gRPC), cache (opaque TCP), frontend (calls
// all three) and loadgen (drives the frontend).
//
// Each app parses its own flags, serves until its context is cancelled, then
// shuts down gracefully. It writes one line per significant event to stdout,
// prefixed with its name; a server's first line is
// "<name>: listening on <addr> ...", which ListenAddr parses, so a parent can
// pass --listen 127.0.0.1:0 and learn the port the kernel chose.
package apps

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// App is one demo workload. It runs until ctx is cancelled (or, for a
// client, until its work is done) and returns nil after a clean shutdown.
type App func(ctx context.Context, args []string, stdout io.Writer) error

// registry lists every demo app by the name `weft demo-app <name>` takes.
var registry = map[string]App{
	"cache":    runCache,
	"catalog":  runCatalog,
	"frontend": runFrontend,
	"ledger":   runLedger,
	"loadgen":  runLoadgen,
}

// Names returns the demo apps' names, sorted.
func Names() []string {
	return slices.Sorted(maps.Keys(registry))
}

// Run runs the demo app called name with its flags in args.
func Run(ctx context.Context, name string, args []string, stdout io.Writer) error {
	app, ok := registry[name]
	if !ok {
		return fmt.Errorf("demo app %q unknown (have %s)", name, strings.Join(Names(), ", "))
	}
	if err := app(ctx, args, stdout); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// ListenAddr returns the address in an app's "listening on <addr>" line.
func ListenAddr(line string) (addr string, ok bool) {
	_, rest, ok := strings.Cut(line, "listening on ")
	if !ok {
		return "", false
	}
	addr, _, _ = strings.Cut(rest, " ")
	return addr, addr != ""
}

// shutdownGrace bounds how long a server waits for in-flight work on stop.
const shutdownGrace = 5 * time.Second

// newFlags returns a flag set that reports errors instead of exiting; usage
// goes to the app's stdout so `weft demo-app <name> -h` shows it.
func newFlags(name string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	return fs
}

// parseFlags parses args and refuses positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// newLog returns the app's event log; log.Logger serialises concurrent writes.
func newLog(name string, stdout io.Writer) *log.Logger {
	return log.New(stdout, name+": ", 0)
}

// listen binds addr and announces the bound address, with detail appended.
func listen(ctx context.Context, logger *log.Logger, addr, detail string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if detail != "" {
		detail = " " + detail
	}
	logger.Printf("listening on %s%s", ln.Addr(), detail)
	return ln, nil
}

// serveHTTP serves h on ln until ctx is cancelled, then lets in-flight
// requests finish (up to shutdownGrace).
func serveHTTP(ctx context.Context, logger *log.Logger, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          logger,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Printf("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}

// writeJSON writes v as the JSON body of a response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do about it
}
