package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// tapKeepalive is how often an idle tap stream sends a comment, so that
// the browser and anything between notice a dead connection.
const tapKeepalive = 15 * time.Second

// redacted replaces the value of a header that carries a credential.
const redacted = "[redacted]"

// credentialHeaders are never shown, whatever the telemetry source already
// did: the dashboard asks for no credential, so it must not hand any out.
var credentialHeaders = map[string]bool{
	"authorization":       true,
	"proxy-authorization": true,
	"cookie":              true,
	"set-cookie":          true,
	"x-api-key":           true,
	"x-auth-token":        true,
}

// tap answers GET /dashboard/api/tap?namespace=&service= with a stream of
// Server-Sent Events: "tap" events carrying a client.TapEvent as JSON, and
// an "end" event when the source stops.
func (d *Dashboard) tap(w http.ResponseWriter, r *http.Request) {
	if d.opts.Tap == nil {
		writeError(w, http.StatusNotImplemented, "this control plane has no tap source")
		return
	}
	q := r.URL.Query()
	f := TapFilter{Namespace: q.Get("namespace"), Name: q.Get("service"), Direction: q.Get("direction")}
	if f.Namespace == "" {
		f.Namespace = v1alpha1.DefaultNamespace
	}
	if f.Direction == "" {
		f.Direction = Inbound
	}
	if f.Direction != Inbound && f.Direction != Outbound {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("direction: %q is neither %q nor %q", f.Direction, Inbound, Outbound))
		return
	}
	if !isDNSLabel(f.Namespace) || (f.Name != "" && !isDNSLabel(f.Name)) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s/%s is not a service name", f.Namespace, f.Name))
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "this server cannot stream")
		return
	}
	select {
	case d.taps <- struct{}{}:
		defer func() { <-d.taps }()
	default:
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%d taps are open already; close one", cap(d.taps)))
		return
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	events, err := d.opts.Tap.Tap(ctx, f)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "tap: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 3000\n: tap of %s\n\n", tapTarget(f))
	flusher.Flush()

	keepalive := time.NewTicker(tapKeepalive)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.closed:
			fmt.Fprint(w, "event: end\ndata: {\"reason\":\"the control plane is shutting down\"}\n\n")
			flusher.Flush()
			return
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case ev, ok := <-events:
			if !ok {
				fmt.Fprint(w, "event: end\ndata: {\"reason\":\"the tap source stopped\"}\n\n")
				flusher.Flush()
				return
			}
			b, err := json.Marshal(redact(ev))
			if err != nil {
				continue
			}
			if _, err := fmt.Fprintf(w, "event: tap\ndata: %s\n\n", b); err != nil {
				return
			}
			// Flush once the burst is written, not after every event.
			if len(events) == 0 {
				flusher.Flush()
			}
		}
	}
}

func tapTarget(f TapFilter) string {
	if f.Name == "" {
		return f.Direction + " requests of every service in " + f.Namespace
	}
	return f.Direction + " requests of " + f.Name + "." + f.Namespace
}

// redact returns ev with the values of credential headers replaced.
func redact(ev client.TapEvent) client.TapEvent {
	ev.RequestHdr = redactHeaders(ev.RequestHdr)
	ev.ResponseHdr = redactHeaders(ev.ResponseHdr)
	return ev
}

func redactHeaders(h map[string][]string) map[string][]string {
	if h == nil {
		return nil
	}
	out := make(map[string][]string, len(h))
	for k, v := range h {
		if credentialHeaders[strings.ToLower(k)] {
			v = []string{redacted}
		}
		out[k] = v
	}
	return out
}
