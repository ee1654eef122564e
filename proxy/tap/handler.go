package tap

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// keepAlive is how often an idle stream gets an empty line, so that a
// tapper behind a proxy or a dead tapper is noticed.
const keepAlive = 15 * time.Second

// Handler serves GET /tap?direction=&path=&method=&authority=[&limit=N]:
// JSON lines of tapevent.Event until the client goes away, the Hub closes
// or limit events have been sent.
func (h *Hub) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := Filter{Direction: q.Get("direction"), PathPrefix: q.Get("path"), Method: q.Get("method"), Authority: q.Get("authority")}
		if f.Direction != "" && f.Direction != "inbound" && f.Direction != "outbound" {
			http.Error(w, fmt.Sprintf("tap: direction %q: must be inbound or outbound", f.Direction), http.StatusBadRequest)
			return
		}
		limit := 0
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				http.Error(w, fmt.Sprintf("tap: limit %q: must be a non-negative integer", s), http.StatusBadRequest)
				return
			}
			limit = n
		}
		flusher, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "tap: streaming is not supported by this connection", http.StatusInternalServerError)
			return
		}
		sub := h.Subscribe(f, DefaultBuffer)
		defer sub.Close()
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		flusher.Flush()

		enc := json.NewEncoder(w)
		tick := time.NewTicker(keepAlive)
		defer tick.Stop()
		sent := 0
		for {
			select {
			case <-r.Context().Done():
				return
			case <-sub.Done():
				return
			case <-tick.C:
				if _, err := w.Write([]byte("\n")); err != nil {
					return
				}
				flusher.Flush()
			case ev := <-sub.Events():
				if err := enc.Encode(ev); err != nil {
					return
				}
				flusher.Flush()
				sent++
				if limit > 0 && sent >= limit {
					return
				}
			}
		}
	})
}
