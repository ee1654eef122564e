package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// peerID returns the SPIFFE ID of the stream's verified client certificate.
func peerID(ctx context.Context) (spiffe.ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffe.ID{}, errors.New("registry: no peer on the stream")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return spiffe.ID{}, errors.New("registry: the connection is not TLS")
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return spiffe.ID{}, errors.New("registry: a client certificate (the workload's SVID) is required")
	}
	id, err := spiffe.FromCert(chains[0][0])
	if err != nil {
		return spiffe.ID{}, fmt.Errorf("registry: client certificate: %w", err)
	}
	return id, nil
}

// checkWorkload returns a gRPC status error when w is malformed or claims an
// identity other than the caller's.
func checkWorkload(caller spiffe.ID, w *meshv1.Workload) error {
	if w == nil {
		return status.Error(codes.InvalidArgument, "registry: request carries no workload")
	}
	if w.GetService() != caller.Service || w.GetNamespace() != caller.Namespace {
		return status.Errorf(codes.PermissionDenied,
			"registry: workload claims service %q in namespace %q, but its client certificate is %s (service %q in namespace %q)",
			w.GetService(), w.GetNamespace(), caller, caller.Service, caller.Namespace)
	}
	if w.GetId() == "" {
		return status.Error(codes.InvalidArgument, "registry: workload.id is empty")
	}
	if err := checkHostPort("workload.address", w.GetAddress(), true); err != nil {
		return err
	}
	if err := checkHostPort("workload.app_address", w.GetAppAddress(), false); err != nil {
		return err
	}
	if err := checkHostPort("workload.admin_address", w.GetAdminAddress(), false); err != nil {
		return err
	}
	if want := xdsmeta.WorkloadID(w.GetService(), w.GetNamespace(), w.GetAddress()); w.GetId() != want {
		return status.Errorf(codes.InvalidArgument, "registry: workload.id is %q, want %q (service.namespace@address)", w.GetId(), want)
	}
	return nil
}

// checkHostPort accepts host:port with a non-empty host and a port from 1 to
// 65535. An empty value is accepted unless required.
func checkHostPort(field, addr string, required bool) error {
	if addr == "" {
		if required {
			return status.Errorf(codes.InvalidArgument, "registry: %s is required", field)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "registry: %s %q: want host:port", field, addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || host == "" {
		return status.Errorf(codes.InvalidArgument, "registry: %s %q: want host:port with a port from 1 to 65535", field, addr)
	}
	return nil
}
