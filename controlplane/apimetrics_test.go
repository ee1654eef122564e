package controlplane

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAPIMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := apiMetrics(reg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/version" {
			w.Write([]byte("{}"))
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	for _, target := range []string{"/api/v1/version", "/api/v1/version", "/api/v1/tokens/abc123", "/api/v1/tokens/zz9", "/secret/probe/1"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", target, nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("BREW", "/api/v1/version", nil))

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "weft_api_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var l []string
			for _, p := range m.GetLabel() {
				l = append(l, p.GetName()+"="+p.GetValue())
			}
			got[strings.Join(l, ",")] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"code=200,method=GET,path=/api/v1/version":     2,
		"code=404,method=GET,path=/api/v1/tokens/{id}": 2,
		"code=404,method=GET,path=other":               1,
		"code=200,method=other,path=/api/v1/version":   1,
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v (IDs and unknown paths folded)", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("weft_api_requests_total{%s} = %v, want %v", k, got[k], v)
		}
	}
}
