package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// histogramResolution is fortio's -r: the width of its lowest histogram
// buckets. Its default (1 ms) is coarser than what is measured here; with
// 10 µs the percentiles of sub-millisecond latencies are not interpolated
// across a whole millisecond.
const histogramResolution = "0.00001"

// loadRun is one `fortio load`.
type loadRun struct {
	name  string // names the JSON output file
	proto protocol
	addr  string // the entry address
	conns int    // -c
	qps   int    // -qps; 0 is as fast as possible
	dur   time.Duration
	calls int    // -n, instead of a duration, when > 0
	cpus  string // run fortio under taskset -c cpus when set
}

// fortioResult is the part of fortio's JSON output the harness reads.
type fortioResult struct {
	ActualQPS         float64
	ActualDuration    int64 // nanoseconds
	DurationHistogram struct {
		Count       int64
		Percentiles []struct {
			Percentile float64
			Value      float64 // seconds
		}
	}
	RetCodes map[string]int64
}

// load runs fortio as the protocol prescribes (-uniform -nocatchup
// -keepalive=true -payload-size -a) and reads its JSON result.
func (e *env) load(ctx context.Context, r loadRun) (*fortioResult, error) {
	dir, err := e.dir("fortio")
	if err != nil {
		return nil, err
	}
	out := filepath.Join(dir, sanitize(r.name)+".json")
	args := []string{e.fortio, "load", "-quiet",
		"-qps", strconv.Itoa(r.qps), "-c", strconv.Itoa(r.conns),
		"-uniform", "-nocatchup", "-keepalive=true",
		"-payload-size", strconv.Itoa(e.opts.Payload),
		"-a", "-data-dir", dir, "-json", out,
		"-r", histogramResolution, "-p", "50,90,99"}
	if r.calls > 0 {
		args = append(args, "-n", strconv.Itoa(r.calls))
	} else {
		args = append(args, "-t", r.dur.String())
	}
	args = append(args, r.proto.fortioArgs()...)
	args = append(args, r.proto.target(r.addr))
	if r.cpus != "" {
		args = append([]string{"taskset", "-c", r.cpus}, args...)
	}
	_ = os.Remove(out)
	if _, err := runCmd(ctx, nil, args...); err != nil {
		return nil, fmt.Errorf("fortio: %w", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("fortio result: %w", err)
	}
	var res fortioResult
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("fortio result %s: %w", out, err)
	}
	return &res, nil
}

// requests is how many calls completed, successfully or not.
func (r *fortioResult) requests() int64 { return r.DurationHistogram.Count }

// failed is how many calls did not get the expected answer: HTTP 200, or
// SERVING for a gRPC ping.
func (r *fortioResult) failed(p protocol) int64 {
	ok := r.RetCodes["200"]
	if p == grpcPing {
		ok = r.RetCodes["SERVING"]
	}
	return r.requests() - ok
}

// check says why a run does not count as having carried traffic.
func (r *fortioResult) check(p protocol) error {
	if r.requests() == 0 {
		return fmt.Errorf("no request completed")
	}
	if n := r.failed(p); n > 0 {
		return fmt.Errorf("%d of %d requests failed (answers: %v)", n, r.requests(), r.RetCodes)
	}
	return nil
}

// percentile returns the q-th percentile of latency in seconds (q as
// passed to -p), or -1 if fortio did not report it.
func (r *fortioResult) percentile(q float64) float64 {
	for _, p := range r.DurationHistogram.Percentiles {
		if p.Percentile == q {
			return p.Value
		}
	}
	return -1
}
