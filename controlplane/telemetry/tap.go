package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
)

// tapBuffer is how far the merged stream may run ahead of its reader
// before the proxies' own buffers start to drop.
const tapBuffer = 256

// maxTapLine bounds one event's JSON (headers included).
const maxTapLine = 1 << 20

// Tap opens GET /tap on every proxy f selects and merges their events.
// It fails when no proxy is registered for the selection; a proxy whose
// tap cannot be opened is logged and left out.
func (a *Aggregator) Tap(ctx context.Context, f TapFilter) (<-chan client.TapEvent, error) {
	if f.Direction == "" {
		f.Direction = directionInbound
	}
	if f.Direction != directionInbound && f.Direction != "outbound" {
		return nil, fmt.Errorf("telemetry: tap direction %q: must be inbound or outbound", f.Direction)
	}
	if f.Service != "" && f.Namespace == "" {
		return nil, fmt.Errorf("telemetry: tap of service %q needs its namespace", f.Service)
	}
	ws, err := a.opts.Workloads.ListWorkloads(ctx, f.Namespace, f.Service)
	if err != nil {
		return nil, fmt.Errorf("telemetry: tap: %w", err)
	}
	var targets []*meshv1.Workload
	for _, w := range ws {
		if w.GetAdminAddress() != "" {
			targets = append(targets, w)
		}
	}
	if len(targets) == 0 {
		what := "the mesh"
		if f.Service != "" {
			what = "service " + f.Service + "." + f.Namespace
		} else if f.Namespace != "" {
			what = "namespace " + f.Namespace
		}
		return nil, fmt.Errorf("telemetry: tap: no proxy of %s is registered", what)
	}
	select {
	case <-a.stop:
		return nil, fmt.Errorf("telemetry: tap: the aggregator has stopped")
	default:
	}

	ctx, cancel := context.WithCancel(ctx)
	out := make(chan client.TapEvent, tapBuffer)
	var streams sync.WaitGroup
	a.wg.Add(1)
	go func() {
		// Owner of this tap: ends it when the aggregator stops, and closes
		// out once every stream has returned.
		defer a.wg.Done()
		select {
		case <-a.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	q := url.Values{"direction": {f.Direction}}
	for k, v := range map[string]string{"path": f.PathPrefix, "method": f.Method, "authority": f.Authority} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, w := range targets {
		streams.Add(1)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer streams.Done()
			if err := a.tapOne(ctx, w, q, out); err != nil && ctx.Err() == nil {
				a.opts.Log.Info("telemetry: tap ended", "workload", w.GetId(), "err", err)
			}
		}()
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		streams.Wait()
		cancel()
		close(out)
	}()
	return out, nil
}

// tapOne streams one proxy's tap into out until ctx is done or the proxy
// ends the stream.
func (a *Aggregator) tapOne(ctx context.Context, w *meshv1.Workload, q url.Values, out chan<- client.TapEvent) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.GetAdminAddress()+"/tap?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := a.stream.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin /tap answered %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxTapLine)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue // keep-alive
		}
		var ev client.TapEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("decode tap event: %w", err)
		}
		ev.Workload = w.GetId()
		select {
		case out <- ev:
		case <-ctx.Done():
			return nil
		}
	}
	return sc.Err()
}
