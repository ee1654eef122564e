package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

func lbPolicy(service, spec string) string {
	return fmt.Sprintf("apiVersion: weft.dev/v1alpha1\nkind: DestinationPolicy\nmetadata: {name: %s}\nspec:\n  loadBalancer: %s\n", service, spec)
}

// TestTrafficLoadBalancing: leastRequest sends a slow instance clearly less
// than roundRobin does; ringHash on a header keeps a key on one instance and
// moves only the keys of an instance that leaves; random spreads evenly,
// in no fixed order.
func TestTrafficLoadBalancing(t *testing.T) {
	cp := startMeshControl(t)
	slowApp := func(slow bool) func(string) http.Handler {
		return func(name string) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if slow {
					time.Sleep(20 * time.Millisecond)
				}
				w.Header().Set("x-backend", name)
				io.WriteString(w, name)
			})
		}
	}
	startWorkloads(t, cp, "lb", []string{"slow"}, slowApp(true))
	startWorkloads(t, cp, "lb", []string{"fast1", "fast2"}, slowApp(false))
	ring := startWorkloads(t, cp, "ring", []string{"a", "b", "c"}, nil)
	startWorkloads(t, cp, "rnd", []string{"a", "b", "c"}, nil)
	client := startClient(t, cp, "lb", "ring", "rnd")
	for _, s := range []string{"lb", "ring", "rnd"} {
		waitClusterSize(t, client, "outbound|"+s+".default", 3)
	}

	t.Run("leastRequest avoids a slow instance", func(t *testing.T) {
		url := "http://" + client.upstreams["lb"] + "/"
		measure := func() float64 {
			ta := fire(900, 12, func(int) result { return doGet(url) })
			if ta.failed() > 0 {
				t.Fatalf("failures: %s", ta)
			}
			t.Logf("%s", countsOf(ta.backends))
			return ta.share("lb-slow")
		}
		applyConfig(t, cp, lbPolicy("lb", "{type: roundRobin}"), client)
		rr := measure()
		applyConfig(t, cp, lbPolicy("lb", "{type: leastRequest}"), client)
		lr := measure()
		t.Logf("the 20ms-slow instance got %.1f%% under roundRobin, %.1f%% under leastRequest", 100*rr, 100*lr)
		if !within(rr, 1.0/3, 0.05) {
			t.Errorf("roundRobin gave the slow instance %.1f%%, want a third", 100*rr)
		}
		if lr > rr*0.6 {
			t.Fatalf("leastRequest gave the slow instance %.1f%%, not clearly less than roundRobin's %.1f%%", 100*lr, 100*rr)
		}
	})

	t.Run("ringHash on a header", func(t *testing.T) {
		applyConfig(t, cp, lbPolicy("ring", "{type: ringHash, ringHash: {header: x-key}}"), client)
		url := "http://" + client.upstreams["ring"] + "/"
		owner := func(key string) string {
			var first string
			for i := range 3 {
				r := doGet(url, "x-key", key)
				if r.err != nil || r.code != 200 {
					t.Fatalf("key %s: %d %v", key, r.code, r.err)
				}
				if i == 0 {
					first = r.backend
				} else if r.backend != first {
					t.Fatalf("key %s went to %s, then %s", key, first, r.backend)
				}
			}
			return first
		}
		// Random session keys, as clients would send them.
		before := map[string]string{}
		spread := map[string]int{}
		for range 60 {
			k := fmt.Sprintf("session-%016x", rand.Uint64())
			before[k] = owner(k)
			spread[before[k]]++
		}
		t.Logf("60 keys by instance: %v", spread)
		if len(spread) < 3 {
			t.Fatalf("60 keys landed on %d of 3 instances: %v", len(spread), spread)
		}
		// The instance owning the most keys leaves: only its keys move.
		var gone *workload
		for _, w := range ring {
			if gone == nil || spread[w.name] > spread[gone.name] {
				gone = w
			}
		}
		if err := gone.side.stop(); err != nil {
			t.Fatal(err)
		}
		waitClusterSize(t, client, "outbound|ring.default", 2)
		moved := 0
		for k, was := range before {
			now := owner(k)
			switch {
			case was == gone.name && now == gone.name:
				t.Fatalf("key %s still goes to the instance that left", k)
			case was == gone.name:
				moved++
			case now != was:
				t.Errorf("key %s moved from %s to %s although %s stayed", k, was, now, was)
			}
		}
		if moved != spread[gone.name] {
			t.Fatalf("%d keys moved, want the %d of the instance that left", moved, spread[gone.name])
		}
	})

	t.Run("random spreads", func(t *testing.T) {
		applyConfig(t, cp, lbPolicy("rnd", "{type: random}"), client)
		url := "http://" + client.upstreams["rnd"] + "/"
		const n = 900
		var seq []string
		for range n {
			r := doGet(url)
			if r.err != nil || r.code != 200 {
				t.Fatalf("%d %v", r.code, r.err)
			}
			seq = append(seq, r.backend)
		}
		counts := map[string]int{}
		repeats := 0
		for i, b := range seq {
			counts[b]++
			if i > 0 && seq[i-1] == b {
				repeats++
			}
		}
		// ±7 points is 4.4 standard deviations for 900 picks at a third.
		for _, name := range []string{"rnd-a", "rnd-b", "rnd-c"} {
			if s := float64(counts[name]) / n; !within(s, 1.0/3, 0.07) {
				t.Errorf("%s got %.1f%%, want a third ± 7 points: %v", name, 100*s, counts)
			}
		}
		// Random picks repeat the previous instance about a third of the
		// time; a fixed rotation never does.
		if repeats < n/6 {
			t.Errorf("only %d of %d picks repeated the previous instance: not random", repeats, n)
		}
	})
}
