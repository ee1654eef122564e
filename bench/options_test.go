package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-only", "weft,haproxy", "-protocols", "http1,grpc", "-conns", "4,64",
		"-duration", "20s", "-repeats", "2", "-tput-duration", "15s"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Configs, []string{"weft", "haproxy"}) || !slices.Equal(o.Protocols, []protocol{http1, grpcPing}) ||
		!slices.Equal(o.Conns, []int{4, 64}) || o.Duration != 20*time.Second || o.Repeats != 2 ||
		o.TputDuration != 15*time.Second || o.QPS != 1000 || o.Payload != 1024 {
		t.Errorf("got %+v", o)
	}
	if want := "go run ./bench -only weft,haproxy -protocols http1,grpc -conns 4,64 -duration 20s -repeats 2 -tput-duration 15s"; o.Command != want {
		t.Errorf("command %q, want %q", o.Command, want)
	}

	smoke, err := parseFlags([]string{"-smoke"})
	if err != nil {
		t.Fatal(err)
	}
	if !smoke.Smoke || smoke.Repeats != 1 || smoke.Configs != nil || smoke.Warmup != 0 {
		t.Errorf("smoke: got %+v", smoke)
	}
}

func TestValidate(t *testing.T) {
	o := DefaultOptions()
	o.Configs = []string{"weft", "envoy"}
	o.Conns = []int{0}
	o.Repeats = 0
	err := o.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{`unknown configuration "envoy"`, "connections must be ≥ 1", "repeats must be ≥ 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := parseFlags([]string{"-protocols", "http3"}); err == nil || !strings.Contains(err.Error(), `unknown protocol "http3"`) {
		t.Errorf("-protocols http3: %v", err)
	}
}

func TestAddrsOf(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range configNames() {
		for _, b := range backends {
			a := addrsOf(c, b)
			for _, ip := range []string{a.client, a.server} {
				if seen[ip] || !strings.HasPrefix(ip, "127.0.2") {
					t.Errorf("%s %s: address %s reused or outside the plan", c, b, ip)
				}
				seen[ip] = true
			}
		}
	}
}
