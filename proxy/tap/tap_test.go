package tap

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/api/tapevent"
	"github.com/weftmesh/weft/proxy/observe"
)

func record(method, path string) *observe.Request {
	req := httptest.NewRequest(method, "http://catalog.shop"+path, nil)
	req.Header.Set("Authorization", "Bearer secret")
	req.Header.Set("Cookie", "session=1")
	req.Header.Set("X-Request-Id", "abc")
	return &observe.Request{
		Direction: observe.Inbound, Start: time.Unix(100, 0), Request: req,
		Source:      observe.Peer{ID: "spiffe://weft.local/ns/shop/sa/web", Service: "web", Namespace: "shop"},
		Destination: observe.Peer{Service: "catalog", Namespace: "shop"},
		MTLS:        true, Route: "default", Upstream: "127.0.0.1:8080", Status: 403,
		ResponseHeader: http.Header{"Set-Cookie": {"a=b"}, "Content-Type": {"text/plain"}},
		Flags:          observe.Denied, Duration: 1500 * time.Microsecond, ResponseBytes: 10,
	}
}

func TestPublishFiltersAndRedacts(t *testing.T) {
	h := NewHub(nil, "catalog.shop@127.0.0.1:9000")
	if h.Active() {
		t.Fatal("Active with no subscriber")
	}
	h.Publish(record("GET", "/items")) // nobody taps: nothing to do
	all := h.Subscribe(Filter{}, 4)
	posts := h.Subscribe(Filter{Method: "post", PathPrefix: "/items"}, 4)
	if !h.Active() {
		t.Fatal("not Active with subscribers")
	}
	h.Publish(record("GET", "/items?x=1"))
	h.Publish(record("POST", "/items/3"))
	h.Publish(record("POST", "/other"))

	if got := len(all.Events()); got != 3 {
		t.Fatalf("unfiltered subscriber got %d events, want 3", got)
	}
	if got := len(posts.Events()); got != 1 {
		t.Fatalf("filtered subscriber got %d events, want 1", got)
	}
	ev := <-all.Events()
	want := tapevent.Event{
		Time: time.Unix(100, 0).UTC(), Workload: "catalog.shop@127.0.0.1:9000", Direction: "inbound",
		Source: "web.shop", SourceID: "spiffe://weft.local/ns/shop/sa/web", Destination: "catalog.shop",
		Method: "GET", Authority: "catalog.shop", Path: "/items?x=1", Status: 403, DurationMs: 1.5,
		Route: "default", Upstream: "127.0.0.1:8080", MTLS: true, Flags: []string{"denied"},
		RequestHdr: map[string][]string{
			"Authorization": {Redacted}, "Cookie": {Redacted}, "X-Request-Id": {"abc"},
		},
		ResponseHdr: map[string][]string{"Set-Cookie": {Redacted}, "Content-Type": {"text/plain"}},
		RespBytes:   10,
	}
	gotJSON, _ := json.Marshal(ev)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("event\n got %s\nwant %s", gotJSON, wantJSON)
	}
	all.Close()
	posts.Close()
	posts.Close()
	if h.Active() {
		t.Fatal("Active after every subscriber closed")
	}
}

func TestSlowSubscriberDrops(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := NewHub(reg, "")
	s := h.Subscribe(Filter{}, 2)
	defer s.Close()
	for i := 0; i < 5; i++ {
		h.Publish(record("GET", "/"))
	}
	if s.Dropped() != 3 {
		t.Fatalf("Dropped() = %d, want 3", s.Dropped())
	}
	var m dto.Metric
	if err := h.dropped.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 3 {
		t.Fatalf("weft_tap_dropped_events_total = %v, want 3", got)
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	h := NewHub(nil, "")
	s := h.Subscribe(Filter{}, 1)
	h.Close()
	select {
	case <-s.Done():
	default:
		t.Fatal("subscription still open after Hub.Close")
	}
	late := h.Subscribe(Filter{}, 1)
	select {
	case <-late.Done():
	default:
		t.Fatal("Subscribe after Close returned an open subscription")
	}
	if h.Active() {
		t.Fatal("Active after Close")
	}
}

func TestHandlerStreams(t *testing.T) {
	h := NewHub(nil, "w")
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/tap?path=/items&limit=2", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The subscription exists once the headers are sent.
	for !h.Active() {
		time.Sleep(time.Millisecond)
	}
	h.Publish(record("GET", "/other"))
	h.Publish(record("GET", "/items/1"))
	h.Publish(record("DELETE", "/items/2"))

	sc := bufio.NewScanner(resp.Body)
	var paths []string
	for sc.Scan() {
		var ev tapevent.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		paths = append(paths, ev.Method+" "+ev.Path)
	}
	if len(paths) != 2 || paths[0] != "GET /items/1" || paths[1] != "DELETE /items/2" {
		t.Fatalf("streamed %q", paths)
	}
}

func TestHandlerRejectsBadQuery(t *testing.T) {
	h := NewHub(nil, "")
	for _, q := range []string{"direction=sideways", "limit=-1", "limit=x"} {
		rec := httptest.NewRecorder()
		h.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/tap?"+q, nil))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", q, rec.Code)
		}
	}
}

func BenchmarkPublishNobodyTaps(b *testing.B) {
	h := NewHub(nil, "")
	r := record("GET", "/")
	b.ReportAllocs()
	for b.Loop() {
		h.Publish(r)
	}
}
