package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/telemetry"
)

// maxWindow bounds GET /api/v1/stats?window=.
const maxWindow = time.Hour

// maxConfigDumpBytes bounds what is relayed from a proxy's /config_dump.
const maxConfigDumpBytes = 32 << 20

// stats answers GET /api/v1/stats?window=1m with the golden metrics the
// telemetry aggregator computed.
func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	if s.Telemetry == nil {
		writeError(w, http.StatusNotImplemented, "this control plane does not collect telemetry")
		return
	}
	window := telemetry.DefaultWindow
	if v := r.URL.Query().Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxWindow {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("window %q: must be a duration between 1s and %s, such as 30s or 5m", v, maxWindow))
			return
		}
		window = d
	}
	st, err := s.Telemetry.Stats(window)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// tap answers GET /api/v1/tap?service=&namespace=&path=&method=&authority=&direction=
// with JSON lines of client.TapEvent until the client goes away.
func (s *server) tap(w http.ResponseWriter, r *http.Request) {
	if s.Telemetry == nil {
		writeError(w, http.StatusNotImplemented, "this control plane does not collect telemetry")
		return
	}
	q := r.URL.Query()
	f := telemetry.TapFilter{
		Service: q.Get("service"), Namespace: q.Get("namespace"), Direction: q.Get("direction"),
		PathPrefix: q.Get("path"), Method: q.Get("method"), Authority: q.Get("authority"),
	}
	if f.Service != "" && f.Namespace == "" {
		f.Namespace = "default"
	}
	events, err := s.Telemetry.Tap(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		s.Log.Warn("api: tap cannot stream", "err", err)
		return
	}
	enc := json.NewEncoder(w)
	for ev := range events {
		if err := enc.Encode(ev); err != nil {
			return // the client left; the tap ends with the request's context
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// proxyConfig answers GET /api/v1/proxy-config?workload=ID with the
// proxy's live configuration, read from its admin port. Private keys never
// leave the proxy, and any field named like one is redacted on the way.
func (s *server) proxyConfig(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("workload")
	if id == "" {
		writeError(w, http.StatusBadRequest, "workload: required, such as catalog.shop@127.0.0.1:9080 (see weft get workloads)")
		return
	}
	svc, ns, ok := workloadService(id)
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("workload %q: must look like <service>.<namespace>@<address>", id))
		return
	}
	ws, err := s.Workloads.ListWorkloads(r.Context(), ns, svc)
	if err != nil {
		writeError(w, statusOf(err), "list workloads: "+err.Error())
		return
	}
	var admin string
	for _, wl := range ws {
		if wl.GetId() == id {
			admin = wl.GetAdminAddress()
			if admin == "" {
				writeError(w, http.StatusConflict, fmt.Sprintf("workload %s registered no admin address", id))
				return
			}
		}
	}
	if admin == "" {
		writeError(w, http.StatusNotFound, fmt.Sprintf("workload %s is not registered", id))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	dump, err := fetchAdmin(ctx, admin, "/config_dump")
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("workload %s: %v", id, err))
		return
	}
	certs, err := fetchAdmin(ctx, admin, "/certs")
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("workload %s: %v", id, err))
		return
	}
	writeJSON(w, http.StatusOK, client.ProxyConfig{Workload: id, Admin: admin, ConfigDump: dump, Certificates: certs})
}

// workloadService splits a workload ID <service>.<namespace>@<addr>.
func workloadService(id string) (svc, ns string, ok bool) {
	name, _, ok := strings.Cut(id, "@")
	if !ok {
		return "", "", false
	}
	svc, ns, ok = strings.Cut(name, ".")
	if !ok || svc == "" || ns == "" {
		return "", "", false
	}
	return svc, ns, true
}

// fetchAdmin GETs a JSON page of a proxy's admin port, redacting private keys.
func fetchAdmin(ctx context.Context, admin, path string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxConfigDumpBytes))
	if err != nil {
		return nil, fmt.Errorf("admin %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("admin %s answered %s", path, resp.Status)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("admin %s: not JSON: %w", path, err)
	}
	out, err := json.Marshal(redactKeys(v))
	if err != nil {
		return nil, fmt.Errorf("admin %s: %w", path, err)
	}
	return out, nil
}

// redactKeys replaces every value under a key that names a private key.
func redactKeys(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if isPrivateKeyField(k) {
				t[k] = "[redacted]"
				continue
			}
			t[k] = redactKeys(e)
		}
	case []any:
		for i, e := range t {
			t[i] = redactKeys(e)
		}
	case string:
		if strings.Contains(t, "PRIVATE KEY-----") {
			return "[redacted]"
		}
	}
	return v
}

func isPrivateKeyField(k string) bool {
	k = strings.ToLower(strings.ReplaceAll(k, "_", ""))
	return k == "privatekey" || k == "keypem"
}
