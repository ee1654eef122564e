package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/api/client"
)

// listWorkloads answers with the registered workloads in protobuf's JSON mapping.
func (s *server) listWorkloads(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ws, err := s.Workloads.ListWorkloads(r.Context(), q.Get("namespace"), q.Get("service"))
	if err != nil {
		writeError(w, statusOf(err), "list workloads: "+err.Error())
		return
	}
	list := client.WorkloadList{Items: make([]json.RawMessage, 0, len(ws))}
	for _, wl := range ws {
		b, err := protojson.Marshal(wl)
		if err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("encode workload %s: %v", wl.GetId(), err))
			return
		}
		list.Items = append(list.Items, b)
	}
	writeJSON(w, http.StatusOK, list)
}
