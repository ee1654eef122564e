package apps

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// get does a GET and returns the status, the version header and the body.
func get(t *testing.T, url string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get(catalogVersionHeader), body
}

func TestCatalogItems(t *testing.T) {
	app := start(t, "catalog", "--listen", "127.0.0.1:0", "--version", "v2")
	base := "http://" + app.addr

	status, version, body := get(t, base+"/items")
	if status != http.StatusOK || version != "v2" {
		t.Fatalf("GET /items: %d, %s %q; want 200, %s v2", status, catalogVersionHeader, version, catalogVersionHeader)
	}
	var got catalogItems
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("GET /items body %s: %v", body, err)
	}
	if got.Version != "v2" || got.Instance != app.addr || len(got.Items) != len(products) {
		t.Errorf("GET /items = %+v; want version v2, instance %s, %d items", got, app.addr, len(products))
	}

	if status, version, _ := get(t, base+"/healthz"); status != http.StatusOK || version != "v2" {
		t.Errorf("GET /healthz: %d, version %q; want 200, v2", status, version)
	}
	if status, _, _ := get(t, base+"/nope"); status != http.StatusNotFound {
		t.Errorf("GET /nope: %d, want 404", status)
	}
	resp, err := http.Post(base+"/items", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /items: %d, want 405", resp.StatusCode)
	}
}

func TestCatalogFailRate(t *testing.T) {
	// 400 requests at rate 0.5 have a standard deviation of 0.025 in the
	// failed fraction, so ±0.1 is four of them: a correct catalog fails this
	// about once in 16,000 runs, and one that ignores the rate never passes.
	const n = 400
	tests := []struct {
		rate, tolerance float64
	}{
		{0, 0},
		{0.5, 0.1},
		{1, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rate), func(t *testing.T) {
			app := start(t, "catalog", "--version", "v1", "--fail-rate", fmt.Sprint(tt.rate))
			failed := 0
			for range n {
				status, version, _ := get(t, "http://"+app.addr+"/items")
				switch {
				case version != "v1":
					t.Fatalf("%s = %q on a %d, want v1", catalogVersionHeader, version, status)
				case status == http.StatusServiceUnavailable:
					failed++
				case status != http.StatusOK:
					t.Fatalf("GET /items: %d, want 200 or 503", status)
				}
			}
			if frac := float64(failed) / n; frac < tt.rate-tt.tolerance || frac > tt.rate+tt.tolerance {
				t.Errorf("%d of %d failed (%.3f), want %.2f ± %.2f", failed, n, frac, tt.rate, tt.tolerance)
			}
			// Health checks must not be failed by fault injection.
			if status, _, _ := get(t, "http://"+app.addr+"/healthz"); status != http.StatusOK {
				t.Errorf("GET /healthz: %d, want 200", status)
			}
		})
	}
}

func TestCatalogStopsGracefully(t *testing.T) {
	app := start(t, "catalog")
	if err := app.stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	app.out.wait(t, "shutting down")
	if _, err := http.Get("http://" + app.addr + "/healthz"); err == nil {
		t.Error("catalog still answering after Run returned")
	}
}
