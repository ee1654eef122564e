package identity

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/weftmesh/weft/api/xdsmeta"
)

// WorkloadHeader is the metadata in which a proxy names its workload ID
// (<service>.<namespace>@<inbound>) when it asks for an SVID. It is only
// bookkeeping: the CA records which SVID each workload holds, which is how
// a root rotation knows when every proxy has moved to the new root.
const WorkloadHeader = "x-weft-workload"

// workloadOf returns the workload ID the caller named, or "" when it named
// none or one that is not of the identity it proved: a caller can only
// account for its own service's workloads.
func workloadOf(ctx context.Context, who caller) string {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get(WorkloadHeader)
	if len(values) != 1 {
		return ""
	}
	id := values[0]
	want := xdsmeta.ServiceHost(who.id.Service, who.id.Namespace) + "@"
	if !strings.HasPrefix(id, want) || len(id) == len(want) || len(id) > 512 || strings.ContainsAny(id, "/ \t\n") {
		return ""
	}
	return id
}

// recordTimeout bounds the bookkeeping write: renewing an SVID with an SVID
// must keep working while etcd is slow or away.
const recordTimeout = time.Second

// recordIssued notes which SVID the caller's workload now holds. A failure
// costs only bookkeeping (a rotation then waits for its grace), never the
// SVID.
func (s *Service) recordIssued(ctx context.Context, who caller, chain [][]byte) {
	id := workloadOf(ctx, who)
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	if err := s.ca.RecordIssued(ctx, id, chain); err != nil {
		s.log.Warn("could not record the SVID issued", "workload", id, "err", err)
	}
}
