package main

import (
	"fmt"
	"strings"
	"time"
)

var changeKinds = []struct{ key, what string }{
	{"join", "endpoint joins (new workload registered, ready)"},
	{"leave", "endpoint leaves (Registry stream ends)"},
	{"http2", "Service protocol http ↔ http2 (its own proxies' inbound cluster)"},
	{"tcp", "Service protocol http ↔ tcp (its proxies' inbound listener, its callers' outbound listener)"},
	{"route", "Route applied: a new 90/10 canary split, then 50/50, then deleted (its callers' route configuration)"},
	{"churn", "endpoint joins and leaves during churn"},
}

func (rep *report) markdown(cfg *config, started time.Time) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Control plane benchmark\n\n")
	p("Command: `go run ./bench/controlplane%s`  \n", argString(cfg.args))
	p("Machine: %s  \n", machineLine())
	p("Date: %s, %s  \n", started.UTC().Format("2006-01-02 15:04 UTC"), time.Since(started).Round(time.Second))
	p("Load average (the machine is shared): %s at the start, %s at the end\n\n", cfg.loadStart, loadAverage())
	labels := make([]string, 0, len(cfg.bins))
	for _, bin := range cfg.bins {
		labels = append(labels, bin.label)
	}
	if len(labels) > 1 || cfg.runs > 1 {
		p("Binaries compared: %s; every configuration ran %d time(s), binaries interleaved; figures are medians.\n\n",
			strings.Join(labels, ", "), cfg.runs)
	}
	if cfg.note != "" {
		p("%s\n\n", cfg.note)
	}

	p("## Targets\n\n| target | binary | measured | met |\n|---|---|---|---|\n")
	for _, l := range labels {
		if ms, ok := rep.scale[1000][l]; ok {
			j, _ := median(ms, "join.all.p99")
			lv, _ := median(ms, "leave.all.p99")
			worst := max(j, lv)
			p("| endpoint change → ACK at every proxy, 1000 proxies, p99 < 1 s | %s | joins %.0f ms, leaves %.0f ms | %s |\n", l, j, lv, yes(worst < 1000))
		}
		if ms, ok := rep.scale[2000][l]; ok && cfg.services >= 1000 {
			hwm, _ := median(ms, "hwm_mb")
			peak, _ := median(ms, "churn_rss_peak_mb")
			p("| control plane RSS, %d services / 2000 proxies ≤ 300 MB | %s | VmHWM %.0f MB (peak VmRSS in churn %.0f MB) | %s |\n", cfg.services, l, hwm, peak, yes(hwm <= 300))
		}
		if ms, ok := rep.svid[l]; ok {
			r, _ := median(ms, "svid.token")
			p("| SVID signing ≥ 2000 CSR/s | %s | %.0f CSR/s (join token, %d clients) | %s |\n", l, r, cfg.svidClients, yes(r >= 2000))
		}
	}
	p("\n")

	p("## Propagation\n\n")
	p("From the change (registration sent, Registry stream cancelled, or apply sent to the API) to the ACK of the response carrying it, at every proxy that should get it. ")
	p("\"All proxies\" is per change: until the last of its proxies ACKed (changes every proxy ACKed within %v). \"Per proxy\" is every single ACK.\n\n", eventTimeout)
	p("| proxies | binary | change | changes (all ACKed) | proxies per change | all proxies p50 / p99 / max (ms) | per proxy p50 / p99 / max (ms) |\n")
	p("|---:|---|---|---:|---:|---:|---:|\n")
	for _, n := range cfg.proxies {
		for _, l := range labels {
			ms := rep.scale[n][l]
			for _, k := range changeKinds {
				ev, ok := median(ms, k.key+".events")
				if !ok || ev == 0 {
					continue
				}
				get := func(s string) float64 { v, _ := median(ms, k.key+"."+s); return v }
				p("| %d | %s | %s | %.0f (%.0f) | %.1f | %.0f / %.0f / %.0f | %.0f / %.0f / %.0f |\n", n, l, k.what,
					ev, get("complete"), get("fanout"), get("all.p50"), get("all.p99"), get("all.max"), get("each.p50"), get("each.p99"), get("each.max"))
			}
		}
	}
	p("\n")

	p("## Control plane memory and CPU\n\n")
	p("CPU is utime+stime of the `weft control` process (its embedded etcd included) per wall second, in cores; memory is VmRSS/VmHWM from /proc. ")
	p("Setup is from the first proxy joining to every proxy connected and registered; \"converged\" is until every proxy sees every endpoint of its upstreams.\n\n")
	p("Go heap in use is what the heap spans held at that moment, garbage included (the GC lets the heap grow to twice what it kept); live is what the heap's objects take right after a collection the bench forces, i.e. what the control plane holds.\n\n")
	p("| proxies | binary | services with endpoints | setup / converged (s) | CPU during setup (s) | at rest: CPU, VmRSS (Go heap in use, live, goroutine stacks) | churn: rate, CPU, peak VmRSS | VmHWM at end | bench process CPU in churn |\n")
	p("|---:|---|---:|---:|---:|---|---|---:|---:|\n")
	for _, n := range cfg.proxies {
		for _, l := range labels {
			ms := rep.scale[n][l]
			get := func(s string) float64 { v, _ := median(ms, s); return v }
			p("| %d | %s | %.0f of %d | %.1f / %.1f | %.1f | %.3f cores, %.0f MB (%.0f MB, %.0f MB, %.0f MB) | %.1f/s, %.2f cores, %.0f MB | %.0f MB | %.2f cores |\n",
				n, l, get("populated"), cfg.services, get("setup_s"), get("converge_s"), get("setup_cp_cpu_s"),
				get("rest_cpu"), get("rest_rss_mb"), get("rest_heap_mb"), get("rest_live_mb"), get("rest_stack_mb"),
				get("churn_rate"), get("churn_cpu"), get("churn_rss_peak_mb"), get("hwm_mb"), get("churn_bench_cpu"))
		}
	}
	p("\n")

	if len(rep.svid) > 0 {
		p("## SVID issuance\n\n")
		p("CSRs (ECDSA P-256, made before the clock starts) signed per second by the Identity gRPC service of a fresh control plane, %d concurrent clients, over %v after %v of warm-up. ", cfg.svidClients, cfg.svidFor, cfg.svidWarmup)
		p("The clients run in the bench process, on the same cores.\n\n")
		p("| binary | authentication | CSR/s | control plane CPU (cores) | bench CPU (cores) | errors |\n|---|---|---:|---:|---:|---:|\n")
		for _, l := range labels {
			ms := rep.svid[l]
			for _, mode := range svidModes {
				get := func(s string) float64 { v, _ := median(ms, "svid."+mode.key+s); return v }
				p("| %s | %s | %.0f | %.2f | %.2f | %.0f |\n", l, mode.what, get(""), get(".cpu"), get(".bench_cpu"), get(".errors"))
			}
		}
		p("\n")
	}

	p("## How it is measured\n\n")
	p("- One real `weft control` per proxy count (embedded etcd, fresh data dir, loopback ports), built from this module unless `-bin` names binaries.\n")
	p("- %d Service resources (protocol http), applied through the HTTPS API with the admin credential of `<data-dir>/config`, 100 per apply. ", cfg.services)
	p("The proxies are the endpoints of as many services as they fill, 2 to 5 each; the other services exist but have no endpoints. ")
	p("Each proxy routes to 1–3 services that have endpoints (explicit `upstreams`, no HTTP proxy port), so a change of one service reaches the few proxies that call it, not the whole mesh.\n")
	p("- Every simulated proxy makes its own P-256 key and gets its SVID through the Identity service with a join token (one per service, created through the API), using proxy/identity; ")
	p("then one TLS connection presenting that SVID carries its ADS stream (state of the world: CDS and LDS wildcard, EDS and RDS by the names they give, SDS ROOTCA; every response decoded and ACKed with its version and nonce) and its Registry stream (workload registered ready).\n")
	p("- Config changes are Service applies that change the protocol, and Route applies and deletes: a canary split of a service with a sibling service of its namespace, as a rollout makes them.\n")
	p("- Churn alternates a join (a new proxy: key, SVID, ADS, then registration) and a leave (an endpoint's Registry stream cancelled) at the given rate; a service keeps at least two endpoints.\n")
	p("- The simulated proxies share the two cores with the control plane; the bench process's own CPU is in the tables.\n")
	return b.String()
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// argString is args as a shell would take them back.
func argString(args []string) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteByte(' ')
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./=,:@+-") == "" {
			b.WriteString(a)
			continue
		}
		b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return b.String()
}
