// Command bench is Weft's data-plane benchmark harness: it builds and starts
// the sidecar-pair topology (load generator → client-side proxy → mutual TLS
// 1.3 → server-side proxy → echo server) for Weft and for its peers (HAProxy,
// nginx, Caddy) plus a direct baseline, drives them with fortio in one
// interleaved run, and writes bench/RESULTS.md. See bench/README.md.
//
//	go run ./bench                      # the full protocol (about two and a half hours)
//	go run ./bench -smoke               # a few seconds per configuration
//	go run ./bench -only weft,haproxy -protocols http1 -duration 20s -repeats 2
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getenv(roleEnv) != "" {
		os.Exit(runRole())
	}
	os.Exit(run(os.Args[1:]))
}

// run parses the flags, runs the benchmark and writes the results; it
// returns the exit status. Ctrl-C (or SIGTERM) stops the run and every
// process it started.
func run(args []string) int {
	opts, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0 // the flag package has printed the usage
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if err := writeResults(rep.opts.Results, rep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Printf("results written to %s\n", rep.opts.Results)
	if bad := rep.failures(); len(bad) > 0 {
		for _, b := range bad {
			fmt.Fprintln(os.Stderr, "bench:", b)
		}
		return 1
	}
	return 0
}
