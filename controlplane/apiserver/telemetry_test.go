package apiserver

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRedactKeys(t *testing.T) {
	in := `{"secrets":{"default":{"tlsCertificate":{"privateKey":{"inlineBytes":"c2VjcmV0"},"certificateChain":{"inlineString":"CERT"}}}},
		"other":[{"private_key":"x"},{"note":"-----BEGIN EC PRIVATE KEY-----\nabc"},{"keep":"value"}]}`
	var v any
	if err := json.Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(redactKeys(v))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, leak := range []string{"c2VjcmV0", `"x"`, "BEGIN EC PRIVATE KEY"} {
		if strings.Contains(s, leak) {
			t.Errorf("%s survived redaction: %s", leak, s)
		}
	}
	for _, kept := range []string{"CERT", `"keep":"value"`} {
		if !strings.Contains(s, kept) {
			t.Errorf("%s was lost: %s", kept, s)
		}
	}
}

func TestWorkloadService(t *testing.T) {
	for id, want := range map[string][2]string{
		"catalog.shop@127.0.1.2:15006": {"catalog", "shop"},
		"catalog@127.0.1.2:15006":      {},
		"catalog.shop":                 {},
		".shop@x":                      {},
	} {
		svc, ns, ok := workloadService(id)
		if ok != (want[0] != "") || svc != want[0] || ns != want[1] {
			t.Errorf("workloadService(%q) = %q, %q, %v", id, svc, ns, ok)
		}
	}
}
