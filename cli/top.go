package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
)

type topOptions struct {
	namespace string
	direction string
	path      string
	method    string
	once      bool
	duration  time.Duration
	refresh   time.Duration
	rows      int
}

func newTopCmd(root *rootOptions) *cobra.Command {
	o := &topOptions{}
	cmd := &cobra.Command{
		Use:   "top SERVICE",
		Short: "Show a service's busiest paths, live",
		Long: `Show the paths a service receives most, from its live requests (tap): for each
source, method and path, how many requests, how many succeeded (non-5xx) and the
best, worst and last latency. On a terminal the table is redrawn in place until
interrupted; otherwise, or with --once, it watches for --duration and prints one
snapshot (for scripts).`,
		Example: `  weft top catalog -n shop
  weft top catalog -n shop --once --duration 10s`,
		Args: argsBetween(1, 1, "a SERVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.duration <= 0 || o.refresh <= 0 {
				return usagef("--duration and --refresh must be positive")
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			live := !o.once && isTerminal(w)
			ctx := cmd.Context()
			if !live {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, o.duration)
				defer cancel()
			}
			t := newTopTable()
			done := make(chan error, 1)
			go func() {
				done <- c.Tap(ctx, client.TapOptions{Service: args[0], Namespace: o.namespace, Direction: o.direction,
					Path: o.path, Method: o.method}, func(ev client.TapEvent) error { t.add(ev); return nil })
			}()
			if !live {
				err := <-done
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					return err
				}
				t.print(w, o.rows)
				return nil
			}
			tick := time.NewTicker(o.refresh)
			defer tick.Stop()
			for {
				select {
				case err := <-done:
					if ctx.Err() != nil {
						return nil
					}
					return err
				case <-tick.C:
					fmt.Fprint(w, "\x1b[H\x1b[2J")
					fmt.Fprintf(w, "weft top %s.%s (%s) — %s\n\n", args[0], o.namespace, o.direction, time.Now().Format("15:04:05"))
					t.print(w, o.rows)
				}
			}
		},
	}
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "default", "namespace of the service")
	cmd.Flags().StringVar(&o.direction, "direction", "inbound", "inbound or outbound")
	cmd.Flags().StringVar(&o.path, "path", "", "only paths starting with this")
	cmd.Flags().StringVar(&o.method, "method", "", "only requests with this method")
	cmd.Flags().BoolVar(&o.once, "once", false, "watch for --duration, print one table and exit")
	cmd.Flags().DurationVar(&o.duration, "duration", 5*time.Second, "how long to watch with --once (or when not on a terminal)")
	cmd.Flags().DurationVar(&o.refresh, "refresh", time.Second, "how often the live table is redrawn")
	cmd.Flags().IntVar(&o.rows, "rows", 20, "how many rows to show")
	return cmd
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

type topKey struct{ source, method, path string }

type topRow struct {
	topKey
	count, success int
	best, worst    float64
	last           float64
}

// topTable aggregates tap events by source, method and path.
type topTable struct {
	mu   sync.Mutex
	rows map[topKey]*topRow
}

func newTopTable() *topTable { return &topTable{rows: map[topKey]*topRow{}} }

func (t *topTable) add(ev client.TapEvent) {
	path, _, _ := strings.Cut(ev.Path, "?")
	k := topKey{source: orDash(ev.Source), method: ev.Method, path: path}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.rows[k]
	if r == nil {
		r = &topRow{topKey: k, best: ev.DurationMs, worst: ev.DurationMs}
		t.rows[k] = r
	}
	r.count++
	if ev.Status < 500 {
		r.success++
	}
	r.best = min(r.best, ev.DurationMs)
	r.worst = max(r.worst, ev.DurationMs)
	r.last = ev.DurationMs
}

func (t *topTable) print(w io.Writer, limit int) {
	t.mu.Lock()
	rows := make([]topRow, 0, len(t.rows))
	for _, r := range t.rows {
		rows = append(rows, *r)
	}
	t.mu.Unlock()
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.count != b.count {
			return a.count > b.count
		}
		if a.path != b.path {
			return a.path < b.path
		}
		if a.method != b.method {
			return a.method < b.method
		}
		return a.source < b.source
	})
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	tw := newTable(w)
	writeRow(tw, []string{"SOURCE", "METHOD", "PATH", "COUNT", "SUCCESS", "BEST", "WORST", "LAST"})
	for _, r := range rows {
		writeRow(tw, []string{r.source, r.method, r.path, strconv.Itoa(r.count),
			strconv.FormatFloat(100*float64(r.success)/float64(r.count), 'f', 1, 64) + "%",
			ms(r.best), ms(r.worst), ms(r.last)})
	}
	tw.Flush()
	if len(rows) == 0 {
		fmt.Fprintln(w, "No requests seen.")
	}
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + "ms" }
