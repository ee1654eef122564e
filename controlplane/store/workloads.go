package store

import (
	"context"
	"fmt"
	"sort"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/api/meshv1"
)

// PutWorkload stores a registered workload under
// /weft/endpoints/<namespace>/<service>/<id>, attached to lease so that it
// disappears with the lease (clientv3.NoLease keeps it until deleted). Putting
// the same workload again moves its key to the new lease. It returns the
// revision of the write, for DeleteWorkloadAt.
func (s *Store) PutWorkload(ctx context.Context, w *meshv1.Workload, lease clientv3.LeaseID) (int64, error) {
	if w == nil {
		return 0, fmt.Errorf("store: put workload: workload is nil")
	}
	if err := checkWorkloadKey(w.GetNamespace(), w.GetService(), w.GetId()); err != nil {
		return 0, fmt.Errorf("store: put workload: %w", err)
	}
	value, err := protojson.Marshal(w)
	if err != nil {
		return 0, fmt.Errorf("store: put workload %q: encode: %w", w.GetId(), err)
	}
	var opts []clientv3.OpOption
	if lease != clientv3.NoLease {
		opts = append(opts, clientv3.WithLease(lease))
	}
	resp, err := s.client.Put(ctx, EndpointKey(w.GetNamespace(), w.GetService(), w.GetId()), string(value), opts...)
	if err != nil {
		return 0, fmt.Errorf("store: put workload %q: %w", w.GetId(), err)
	}
	return resp.Header.Revision, nil
}

// DeleteWorkloadAt deletes a workload's key if nothing wrote it since
// revision (the one PutWorkload returned): a registration that a newer one
// replaced, through this control plane replica or another, stays. It reports
// whether the key was deleted.
func (s *Store) DeleteWorkloadAt(ctx context.Context, namespace, service, id string, revision int64) (bool, error) {
	if err := checkWorkloadKey(namespace, service, id); err != nil {
		return false, fmt.Errorf("store: delete workload: %w", err)
	}
	key := EndpointKey(namespace, service, id)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", revision)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return false, fmt.Errorf("store: delete workload %q: %w", id, err)
	}
	return resp.Succeeded, nil
}

func checkWorkloadKey(namespace, service, id string) error {
	for _, f := range []struct{ what, v string }{
		{"workload namespace", namespace},
		{"workload service", service},
		{"workload id", id},
	} {
		if err := checkSegment(f.what, f.v); err != nil {
			return err
		}
	}
	return nil
}

// ListWorkloads returns the registered workloads of one service, sorted by
// namespace, service and id. An empty namespace or service matches every
// namespace or service.
func (s *Store) ListWorkloads(ctx context.Context, namespace, service string) ([]*meshv1.Workload, error) {
	prefix := PrefixEndpoints
	if namespace != "" {
		if err := checkSegment("namespace", namespace); err != nil {
			return nil, fmt.Errorf("store: list workloads: %w", err)
		}
		prefix += namespace + "/"
		if service != "" {
			if err := checkSegment("service", service); err != nil {
				return nil, fmt.Errorf("store: list workloads: %w", err)
			}
			prefix += service + "/"
		}
	}
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("store: list workloads: %w", err)
	}
	type keyed struct {
		ns, svc, id string
		w           *meshv1.Workload
	}
	found := make([]keyed, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		ns, svc, id, err := ParseEndpointKey(string(kv.Key))
		if err != nil {
			return nil, fmt.Errorf("store: list workloads: %w", err)
		}
		if service != "" && svc != service {
			continue
		}
		w, err := DecodeWorkload(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("store: list workloads: %s: %w", kv.Key, err)
		}
		found = append(found, keyed{ns: ns, svc: svc, id: id, w: w})
	}
	sort.Slice(found, func(i, j int) bool {
		a, b := found[i], found[j]
		switch {
		case a.ns != b.ns:
			return a.ns < b.ns
		case a.svc != b.svc:
			return a.svc < b.svc
		default:
			return a.id < b.id
		}
	})
	out := make([]*meshv1.Workload, len(found))
	for i, k := range found {
		out[i] = k.w
	}
	return out, nil
}
