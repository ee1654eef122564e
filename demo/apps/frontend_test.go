package apps

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// backends starts a catalog, a ledger and a cache, and returns the frontend
// flags that point at them directly, without a mesh in between.
func backends(t *testing.T, catalogArgs ...string) map[string]string {
	t.Helper()
	return map[string]string{
		"catalog": "http://" + start(t, "catalog", catalogArgs...).addr,
		"ledger":  start(t, "ledger").addr,
		"cache":   start(t, "cache").addr,
	}
}

func startFrontend(t *testing.T, deps map[string]string) *running {
	t.Helper()
	return start(t, "frontend", "--listen", "127.0.0.1:0",
		"--catalog", deps["catalog"], "--ledger", deps["ledger"], "--cache", deps["cache"],
		"--timeout", "2s", "--cache-conns", "2")
}

func TestFrontendCombinesDependencies(t *testing.T) {
	app := startFrontend(t, backends(t, "--version", "v3"))

	for i, want := range []struct {
		seq      uint64
		hit      bool
		previous string
	}{
		{seq: 1},
		{seq: 2, hit: true, previous: "v3"},
	} {
		status, _, body := get(t, "http://"+app.addr+"/")
		if status != http.StatusOK {
			t.Fatalf("GET / #%d: %d %s", i, status, body)
		}
		var page frontPage
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("GET / #%d body %s: %v", i, body, err)
		}
		if page.Catalog.Version != "v3" || page.Catalog.Items != len(products) || page.Catalog.Instance == "" {
			t.Errorf("GET / #%d catalog = %+v, want v3 with %d items and an instance", i, page.Catalog, len(products))
		}
		if page.Ledger.Seq != want.seq || page.Ledger.Instance == "" {
			t.Errorf("GET / #%d ledger = %+v, want seq %d and an instance", i, page.Ledger, want.seq)
		}
		if page.Cache.Hit != want.hit || page.Cache.PreviousVersion != want.previous {
			t.Errorf("GET / #%d cache = %+v, want hit %v, previous %q", i, page.Cache, want.hit, want.previous)
		}
	}
	if status, _, _ := get(t, "http://"+app.addr+"/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz: %d, want 200", status)
	}
	if status, _, _ := get(t, "http://"+app.addr+"/other"); status != http.StatusNotFound {
		t.Errorf("GET /other: %d, want 404", status)
	}
}

func TestFrontendNamesDeadDependency(t *testing.T) {
	for _, dead := range []string{"catalog", "ledger", "cache"} {
		t.Run(dead, func(t *testing.T) {
			deps := backends(t)
			deps[dead] = deadAddr(t)
			if dead == "catalog" {
				deps[dead] = "http://" + deps[dead]
			}
			app := startFrontend(t, deps)

			for range 3 {
				status, _, body := get(t, "http://"+app.addr+"/")
				var e frontError
				if err := json.Unmarshal(body, &e); err != nil {
					t.Fatalf("GET / body %s: %v", body, err)
				}
				if status != http.StatusBadGateway || e.Failed != dead || !strings.HasPrefix(e.Error, dead+": ") {
					t.Fatalf("GET / = %d %+v, want 502 naming %s", status, e, dead)
				}
			}
			// An outage is logged once, not per request.
			if n := app.out.count(dead + " failing"); n != 1 {
				t.Errorf("%q logged %d times, want once:\n%s", dead+" failing", n, app.out)
			}
		})
	}
}

func TestFrontendReportsFailingCatalog(t *testing.T) {
	app := startFrontend(t, backends(t, "--fail-rate", "1"))
	status, _, body := get(t, "http://"+app.addr+"/")
	if status != http.StatusBadGateway || !strings.Contains(string(body), "503") {
		t.Fatalf("GET / with a failing catalog = %d %s, want 502 mentioning 503", status, body)
	}
}

func TestDepHealthLogsTransitionsOnly(t *testing.T) {
	out := newLines()
	d := &depHealth{log: newLog("frontend", out), failing: map[string]bool{}}
	failure := errors.New("connection refused")
	for _, err := range []error{nil, failure, failure, nil, nil, failure} {
		d.observe("ledger", err)
	}
	want := "frontend: ledger failing: connection refused\n" +
		"frontend: ledger recovered\n" +
		"frontend: ledger failing: connection refused"
	if got := out.String(); got != want {
		t.Errorf("logged:\n%s\nwant:\n%s", got, want)
	}
}
