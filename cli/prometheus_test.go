package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/controlplane/promsd"
)

func TestPrometheusConfig(t *testing.T) {
	for _, c := range []struct {
		golden string
		args   []string
	}{
		{"prometheus-config-http", nil},
		{"prometheus-config-http-custom", []string{"--control", "127.0.0.9:15014", "--scrape-interval", "5s", "--refresh", "1m30s"}},
		{"prometheus-config-usage", []string{"--sd", "consul"}},
	} {
		t.Run(c.golden, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := RunWith(append([]string{"prometheus-config"}, c.args...), nil, &out, &errOut)
			checkGolden(t, c.golden, out.String()+errOut.String())
			if (code == 0) != (c.golden != "prometheus-config-usage") {
				t.Errorf("exit %d", code)
			}
		})
	}
}

func TestPrometheusConfigFileSD(t *testing.T) {
	groups := []promsd.Group{{Targets: []string{"127.10.0.2:15000"}, Labels: map[string]string{"job": promsd.JobProxies, "service": "web"}}}
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != promsd.Path {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(groups)
	}))
	defer control.Close()
	file := filepath.Join(t.TempDir(), "weft.json")
	var out, errOut bytes.Buffer
	code := RunWith([]string{"prometheus-config", "--control", strings.TrimPrefix(control.URL, "http://"), "--file-sd", file, "--once"}, nil, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "file_sd_configs:\n      - files: ['"+file+"']") {
		t.Errorf("config does not read %s:\n%s", file, out.String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var got []promsd.Group
	if err := json.Unmarshal(b, &got); err != nil || len(got) != 1 || got[0].Targets[0] != "127.10.0.2:15000" {
		t.Errorf("file: %v %s", err, b)
	}

	// An unreachable control plane is an error with --once.
	control.Close()
	if code := RunWith([]string{"prometheus-config", "--control", strings.TrimPrefix(control.URL, "http://"), "--file-sd", file, "--once"}, nil, &out, &errOut); code == 0 {
		t.Error("exit 0 with the control plane gone")
	}
}

func TestPromDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		15 * time.Second: "15s", 90 * time.Second: "1m30s", time.Hour: "1h", 500 * time.Millisecond: "500ms", 0: "0s",
	} {
		if got := promDuration(d); got != want {
			t.Errorf("promDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
