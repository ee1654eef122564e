package main

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestSmoke runs the benchmark with 20 proxies for a few seconds and checks
// that every timed change reached every proxy that should have got it. It
// asserts no time.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds weft and runs a control plane")
	}
	cfg, err := parseFlags([]string{"-smoke"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := run(ctx, cfg, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())

	runs := rep.scale[20]["weft"]
	if len(runs) != 1 {
		t.Fatalf("got %d runs of 20 proxies, want 1", len(runs))
	}
	m := runs[0]
	for _, kind := range []string{"join", "leave", "http2", "tcp", "route", "churn"} {
		events, acks := m[kind+".events"], m[kind+".acks"]
		if events == 0 || acks == 0 {
			t.Errorf("%s: %v changes timed by %v ACKs; want some of each", kind, events, acks)
		}
		if missing := m[kind+".missing"]; missing != 0 {
			t.Errorf("%s: %v proxies never ACKed a change they should have got", kind, missing)
		}
		if complete := m[kind+".complete"]; complete != events {
			t.Errorf("%s: %v of %v changes reached every proxy", kind, complete, events)
		}
	}
	if m["rest_rss_mb"] == 0 || m["hwm_mb"] == 0 {
		t.Errorf("no memory figures: VmRSS %v MB, VmHWM %v MB", m["rest_rss_mb"], m["hwm_mb"])
	}
	svid := rep.svid["weft"]
	if len(svid) != 1 {
		t.Fatalf("got %d SVID runs, want 1", len(svid))
	}
	for _, mode := range svidModes {
		if r := svid[0]["svid."+mode.key]; r <= 0 {
			t.Errorf("SVID %s: %v CSR/s", mode.key, r)
		}
		if e := svid[0]["svid."+mode.key+".errors"]; e != 0 {
			t.Errorf("SVID %s: %v errors", mode.key, e)
		}
	}
}
