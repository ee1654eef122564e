package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/weftmesh/weft/bench/internal/pprofget"
)

// profile starts a CPU profile of every proxy that has an admin endpoint,
// over most of a run of length dur, when -profile is set. The returned
// function waits for those profiles and then takes a heap profile of each
// proxy; it is a no-op without -profile. A profile that cannot be taken is
// a warning, not a failed run: the measurement stands without it.
func (e *env) profile(ctx context.Context, run string, proxies []*proc, dur time.Duration) func() {
	if e.opts.Profile == "" {
		return func() {}
	}
	var targets []*proc
	for _, p := range proxies {
		if p.admin != "" {
			targets = append(targets, p)
		}
	}
	if len(targets) == 0 {
		return func() {}
	}
	if err := os.MkdirAll(e.opts.Profile, 0o755); err != nil {
		e.logf("warning: profiles: %v", err)
		return func() {}
	}
	secs := max(1, int((dur-time.Second)/time.Second))
	// A proxy that hangs must not hold the run up for longer than this.
	fetchCtx, cancel := context.WithTimeout(ctx, dur+time.Minute)
	var wg sync.WaitGroup
	for _, p := range targets {
		wg.Go(func() {
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.admin, secs)
			if err := pprofget.Save(fetchCtx, url, e.profilePath(run, p, "cpu")); err != nil {
				e.logf("warning: CPU profile of %s: %v", p.name, err)
			}
		})
	}
	return func() {
		defer cancel()
		wg.Wait()
		for _, p := range targets {
			url := fmt.Sprintf("http://%s/debug/pprof/heap", p.admin)
			if err := pprofget.Save(fetchCtx, url, e.profilePath(run, p, "heap")); err != nil {
				e.logf("warning: heap profile of %s: %v", p.name, err)
			}
		}
	}
}

func (e *env) profilePath(run string, p *proc, kind string) string {
	return filepath.Join(e.opts.Profile, fmt.Sprintf("%s-%s-%s.pprof", run, p.name, kind))
}
