package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// Defaults of `weft rollout`.
const (
	defaultRolloutSteps    = "10,25,50,100"
	defaultRolloutInterval = 30 * time.Second
	defaultMaxErrorRate    = "1%"
	defaultMinRequests     = 20
	// rolloutPoll is how often the metrics are read during an interval, so
	// that a failing subset is rolled back without waiting for its end.
	rolloutPoll = 5 * time.Second
	// settleTimeout bounds the wait, after each step, for the proxies to
	// apply the Route; settlePoll is how often its status is read meanwhile.
	settleTimeout = 15 * time.Second
	settlePoll    = 500 * time.Millisecond
	// scrapeTimeout bounds the read of one proxy's metrics.
	scrapeTimeout = 5 * time.Second
	// scrapeConcurrency bounds the proxies read at once.
	scrapeConcurrency = 16
	// rolloutSource names the rollout's applies in the control plane's messages.
	rolloutSource  = "weft rollout"
	requestsMetric = "weft_requests_total"
)

type rolloutOptions struct {
	namespace    string
	to, from     string
	steps        string
	interval     time.Duration
	maxErrorRate string
	minRequests  int
}

func newRolloutCmd(root *rootOptions) *cobra.Command {
	opts := &rolloutOptions{}
	cmd := &cobra.Command{
		Use:   "rollout SERVICE --to SUBSET [--from SUBSET]",
		Short: "Shift a service's traffic to a new subset step by step, rolling back on errors",
		Long: `Shift the traffic of SERVICE from one subset to another in steps, watching
the new subset's error rate between steps and rolling back when it is too high.

Both subsets must be defined by the service's DestinationPolicy. Each step
applies a Route for SERVICE with one rule that sends (100-w)% of requests to
--from and w% to --to; a Route that has other rules is left alone and the
rollout refused. Between steps, for --interval, the rollout reads the
/metrics of every registered proxy and sums the requests they sent to the
--to subset (weft_requests_total, direction "outbound", destination_version
the subset's version label). When at least
--min-requests were sent and more than --max-error-rate of them failed (5xx),
it sends all traffic back to --from and exits non-zero. After each step it
also waits (up to 15s) for the proxies to run the new Route, and rolls back
if they reject it.

--from defaults to the other subset when the DestinationPolicy defines two.
Ctrl-C stops the rollout and leaves the current weights in place.`,
		Example: `  weft rollout payments --to v2
  weft rollout payments -n shop --from v1 --to v2 --steps 5,20,50,100 --interval 1m --max-error-rate 0.5%`,
		Args: argsBetween(1, 1, "a SERVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return opts.run(cmd, root, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.namespace, "namespace", "n", "", `namespace of the service (default "default")`)
	f.StringVar(&opts.to, "to", "", "subset to shift the traffic to (required)")
	f.StringVar(&opts.from, "from", "", "subset to shift the traffic from (default: the DestinationPolicy's other subset)")
	f.StringVar(&opts.steps, "steps", defaultRolloutSteps, "percentages of traffic sent to --to, one step each, increasing")
	f.DurationVar(&opts.interval, "interval", defaultRolloutInterval, "how long each step is watched before the next")
	f.StringVar(&opts.maxErrorRate, "max-error-rate", defaultMaxErrorRate, "highest error rate of --to tolerated, a percentage such as 1% or 0.5%")
	f.IntVar(&opts.minRequests, "min-requests", defaultMinRequests, "fewest requests to --to in a step for its error rate to be judged")
	return cmd
}

// rolloutPlan is a validated rollout.
type rolloutPlan struct {
	service, namespace string
	from, to           string
	steps              []int
	interval           time.Duration
	// maxErrorRate is a fraction: 0.01 for 1%.
	maxErrorRate float64
	minRequests  int
	// route names the Route the rollout writes: "namespace/name".
	route string
	// toVersion is the version label the --to subset selects: the
	// destination_version of the requests that are watched.
	toVersion string
}

// watched selects the requests a rollout judges: those the proxies sent to
// the service's workloads of the --to subset's version.
func (p *rolloutPlan) watched() destination {
	return destination{service: p.service, namespace: p.namespace, version: p.toVersion}
}

func (p *rolloutPlan) host() string { return xdsmeta.ServiceHost(p.service, p.namespace) }

func (o *rolloutOptions) plan(service string) (*rolloutPlan, error) {
	p := &rolloutPlan{service: service, namespace: o.namespace, from: o.from, to: o.to,
		interval: o.interval, minRequests: o.minRequests}
	if p.namespace == "" {
		p.namespace = defaultNamespace
	}
	if p.to == "" {
		return nil, usagef("--to is required: name the subset to shift the traffic to")
	}
	if p.from != "" && p.from == p.to {
		return nil, usagef("--from and --to are both %q: name two different subsets", p.to)
	}
	steps, err := parseSteps(o.steps)
	if err != nil {
		return nil, err
	}
	p.steps = steps
	if p.interval <= 0 {
		return nil, usagef("--interval must be positive, got %s", p.interval)
	}
	if p.maxErrorRate, err = parsePercent(o.maxErrorRate); err != nil {
		return nil, err
	}
	if p.minRequests < 0 {
		return nil, usagef("--min-requests must not be negative, got %d", p.minRequests)
	}
	return p, nil
}

// parseSteps reads "10,25,50,100": increasing percentages from 1 to 100.
func parseSteps(s string) ([]int, error) {
	var steps []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSuffix(strings.TrimSpace(f), "%")
		w, err := strconv.Atoi(f)
		if err != nil || w < 1 || w > 100 {
			return nil, usagef("--steps %q: each step is a percentage from 1 to 100, such as 10,25,50,100", s)
		}
		if len(steps) > 0 && w <= steps[len(steps)-1] {
			return nil, usagef("--steps %q: steps must increase", s)
		}
		steps = append(steps, w)
	}
	return steps, nil
}

// parsePercent reads "1%", "0.5%" or "2" (a percentage) as a fraction.
func parsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 100 {
		return 0, usagef("--max-error-rate %q: use a percentage from 0 to 100, such as 1%% or 0.5%%", s)
	}
	return v / 100, nil
}

func (o *rolloutOptions) run(cmd *cobra.Command, root *rootOptions, service string) error {
	p, err := o.plan(service)
	if err != nil {
		return err
	}
	c, err := root.client()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	route, err := p.prepare(ctx, c)
	if err != nil {
		return err
	}
	r := &rollout{
		plan: p,
		out:  cmd.OutOrStdout(),
		apply: func(w int) error {
			obj := route.withWeights(p, w)
			data, err := json.Marshal(obj)
			if err != nil {
				return fmt.Errorf("encode %s: %w", obj.Ref(), err)
			}
			// An apply under way is finished even after Ctrl-C, so that the
			// weights in place are the ones reported.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_, err = c.Apply(actx, data, rolloutSource)
			return err
		},
		scrape: func(ctx context.Context) (snapshot, error) {
			return scrapeSubset(ctx, c, adminClient, p.watched())
		},
		sleep: sleepContext,
		poll:  rolloutPoll,
		status: func(ctx context.Context) (*client.RouteStatus, error) {
			ns, name, _ := strings.Cut(p.route, "/")
			items, err := c.RouteStatuses(ctx, ns)
			if client.IsNotFound(err) {
				return nil, nil // a control plane without route status
			}
			if err != nil {
				return nil, err
			}
			for i := range items {
				if items[i].Name == name {
					return &items[i], nil
				}
			}
			return nil, nil
		},
		settleFor: settleTimeout,
	}
	return r.run(ctx)
}

// rollout runs a plan: apply a step, watch, next step, or roll back.
type rollout struct {
	plan *rolloutPlan
	out  io.Writer
	// apply writes the Route sending w% of the traffic to --to.
	apply func(w int) error
	// scrape reads the requests sent to --to so far, by proxy.
	scrape func(ctx context.Context) (snapshot, error)
	// sleep waits d or until ctx is done, returning ctx's error then.
	sleep func(ctx context.Context, d time.Duration) error
	// poll is how often the metrics are read within an interval.
	poll time.Duration
	// status, if set, reads the Route's status, to wait after each step
	// until the proxies run it (for at most settleFor).
	status    func(ctx context.Context) (*client.RouteStatus, error)
	settleFor time.Duration
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *rollout) run(ctx context.Context) error {
	p := r.plan
	fmt.Fprintf(r.out, "rollout of %s: %s → %s in %d steps (%s), watching %s for %s per step; "+
		"rolling back above %s errors over at least %d requests\n",
		p.host(), p.from, p.to, len(p.steps), percents(p.steps), p.to, p.interval, formatRate(p.maxErrorRate), p.minRequests)
	current := 0 // the weight of --to in place
	for i, w := range p.steps {
		tag := fmt.Sprintf("[step %d/%d] %d%% → %s", i+1, len(p.steps), w, p.to)
		interrupted := func() error {
			fmt.Fprintf(r.out, "%s: interrupted; Route %s left at %s\n", tag, p.route, weights(p, current))
			return fmt.Errorf("rollout of %s interrupted at step %d/%d: %s keeps %d%% of the traffic; "+
				"run weft rollout again to continue, or with --to %s --steps 100 to go back", p.host(), i+1, len(p.steps), p.to, current, p.from)
		}
		rollback := func(why string) error {
			if err := r.apply(0); err != nil {
				return r.failed(current, fmt.Errorf("roll back: apply Route %s: %w", p.route, err))
			}
			fmt.Fprintf(r.out, "rolled back: Route %s applied (%s)\n", p.route, weights(p, 0))
			return fmt.Errorf("rollout of %s to %s rolled back at step %d/%d (%d%%): %s", p.host(), p.to, i+1, len(p.steps), w, why)
		}
		if err := r.apply(w); err != nil {
			return r.failed(current, fmt.Errorf("%s: apply Route %s: %w", tag, p.route, err))
		}
		current = w
		fmt.Fprintf(r.out, "%s: Route %s applied (%s)\n", tag, p.route, weights(p, w))
		rejected, err := r.awaitProxies(ctx, tag)
		switch {
		case ctx.Err() != nil:
			return interrupted()
		case err != nil:
			return r.failed(current, fmt.Errorf("%s: %w", tag, err))
		case rejected != "":
			return rollback(rejected)
		}
		if i == len(p.steps)-1 {
			break
		}
		v, err := r.watch(ctx)
		switch {
		case ctx.Err() != nil:
			return interrupted()
		case err != nil:
			return r.failed(current, fmt.Errorf("%s: %w", tag, err))
		}
		fmt.Fprintf(r.out, "%s … %s\n", tag, v.summary(p))
		if v.rollback {
			return rollback(fmt.Sprintf("%s error rate %s over %d requests exceeds %s",
				p.to, formatRate(v.rate()), int64(v.total), formatRate(p.maxErrorRate)))
		}
	}
	last := p.steps[len(p.steps)-1]
	if last == 100 {
		fmt.Fprintf(r.out, "done: %s sends all its traffic to %s (Route %s)\n", p.host(), p.to, p.route)
	} else {
		fmt.Fprintf(r.out, "done: %s sends %d%% of its traffic to %s and %d%% to %s (Route %s)\n",
			p.host(), last, p.to, 100-last, p.from, p.route)
	}
	return nil
}

// awaitProxies waits, for at most settleFor (and the interval), until the
// proxies that read the Route run what was just applied, and says how far
// it got. It returns why to roll back when they rejected it. Without a
// status source, or when the control plane does not track proxies, it
// returns at once.
func (r *rollout) awaitProxies(ctx context.Context, tag string) (rejected string, err error) {
	if r.status == nil {
		return "", nil
	}
	limit := min(r.settleFor, r.plan.interval)
	var st *client.RouteStatus
	waited := time.Duration(0)
	for {
		if st, err = r.status(ctx); err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			// The rollout does not depend on it: the metrics decide.
			fmt.Fprintf(r.out, "%s: route status unavailable: %v\n", tag, err)
			return "", nil
		}
		if st == nil || st.Phase != client.RoutePending && st.Phase != client.RouteRejected || waited >= limit {
			break
		}
		d := min(settlePoll, limit-waited)
		if err := r.sleep(ctx, d); err != nil {
			return "", err
		}
		waited += d
	}
	if st == nil {
		return "", nil
	}
	counts := ""
	if st.Proxies != nil && st.Applied != nil {
		counts = fmt.Sprintf("%d/%d proxies", *st.Applied, *st.Proxies)
	}
	switch st.Phase {
	case client.RouteApplied:
		fmt.Fprintf(r.out, "%s: applied to %s\n", tag, counts)
	case client.RoutePending:
		fmt.Fprintf(r.out, "%s: applied to %s after %s; watching anyway\n", tag, counts, waited)
	case client.RouteNoProxies:
		fmt.Fprintf(r.out, "%s: no connected proxy sends to %s yet\n", tag, r.plan.host())
	case client.RouteRejected:
		msg := ""
		if len(st.Errors) > 0 {
			msg = ": " + st.Errors[0]
		}
		fmt.Fprintf(r.out, "%s: rejected by %d of %d proxies%s\n", tag, len(st.Errors), derefOr(st.Proxies, len(st.Errors)), msg)
		return fmt.Sprintf("proxies rejected Route %s%s", r.plan.route, msg), nil
	case client.RouteNotAccepted:
		fmt.Fprintf(r.out, "%s: Route %s not accepted: %s\n", tag, r.plan.route, st.Reason)
		return fmt.Sprintf("Route %s not accepted: %s", r.plan.route, st.Reason), nil
	}
	return "", nil
}

func derefOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// failed reports an error after which the weights in place are unknown to
// the user.
func (r *rollout) failed(current int, err error) error {
	fmt.Fprintf(r.out, "stopped: Route %s was last applied with %s\n", r.plan.route, weights(r.plan, current))
	return err
}

// watch reads the metrics for one interval and judges the --to subset: at
// each poll, so that it rolls back as soon as the verdict is clear, and at
// the end.
func (r *rollout) watch(ctx context.Context) (verdict, error) {
	p := r.plan
	start, err := r.scrape(ctx)
	if err != nil {
		return verdict{}, err
	}
	poll := r.poll
	if poll <= 0 || poll > p.interval {
		poll = p.interval
	}
	var v verdict
	for elapsed := time.Duration(0); elapsed < p.interval; {
		d := min(poll, p.interval-elapsed)
		if err := r.sleep(ctx, d); err != nil {
			return verdict{}, err
		}
		elapsed += d
		end, err := r.scrape(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return verdict{}, ctx.Err()
			}
			return verdict{}, err
		}
		v = judge(delta(start, end), p.maxErrorRate, p.minRequests)
		if v.rollback {
			break
		}
	}
	return v, nil
}
