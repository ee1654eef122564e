package pprofget

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSave(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/pprof/heap" {
			http.Error(w, "profiles are served to loopback callers only", http.StatusForbidden)
			return
		}
		w.Write([]byte("profile bytes"))
	}))
	defer srv.Close()
	dir := t.TempDir()

	ok := filepath.Join(dir, "heap.pprof")
	if err := Save(context.Background(), srv.URL+"/debug/pprof/heap", ok); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(ok); err != nil || string(b) != "profile bytes" {
		t.Errorf("saved %q (%v), want the answer", b, err)
	}

	refused := filepath.Join(dir, "cpu.pprof")
	err := Save(context.Background(), srv.URL+"/debug/pprof/profile", refused)
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "loopback callers only") {
		t.Errorf("refused profile: %v, want the status and the server's reason", err)
	}
	if _, err := os.Stat(refused); !os.IsNotExist(err) {
		t.Errorf("a refused profile left a file behind: %v", err)
	}
}
