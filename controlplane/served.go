package controlplane

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/controlplane/translate"
)

// servedWorkloads lists the workloads of the mesh state this replica
// serves: what its watch of the store already decoded, with no read of the
// store. The periodic readers use it: telemetry's scrape every few seconds
// and Prometheus's discovery used to read and decode every workload from
// etcd each time, and telemetry kept its own copy of all of them between
// scrapes. The API keeps reading the store, which is what a user asks.
type servedWorkloads struct {
	mesh *atomic.Pointer[translate.Input]
}

func (s servedWorkloads) ListWorkloads(_ context.Context, namespace, service string) ([]*meshv1.Workload, error) {
	in := s.mesh.Load()
	if in == nil {
		return nil, errors.New("control: the mesh state is not loaded yet")
	}
	return in.ListWorkloads(namespace, service), nil
}
