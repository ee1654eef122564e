// Package translate turns the mesh's state into the xDS resources of one
// proxy. It is a pure function: the same Input and node give the same
// resources, byte for byte, so it is golden-tested and pushes are skipped
// when a proxy's output did not change.
package translate

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"google.golang.org/protobuf/proto"
)

// ServiceKey names a mesh service.
type ServiceKey struct {
	Namespace, Name string
}

// Input is everything translation reads.
type Input struct {
	TrustDomain string
	// TrustBundlePEM holds every root the mesh trusts, PEM.
	TrustBundlePEM []byte
	// Mesh is the defaulted spec of the Mesh resource (defaults if none exists).
	Mesh v1alpha1.MeshSpec
	// Services holds the Service resources by key (spec defaulted).
	Services map[ServiceKey]*v1alpha1.ServiceSpec
	// Workloads holds every registered workload, by service; each slice sorted by ID.
	Workloads map[ServiceKey][]*meshv1.Workload
	// Routes holds the Route of each service that has one, keyed by the
	// service it governs (spec defaulted).
	Routes map[ServiceKey]*v1alpha1.RouteSpec
	// Policies holds the DestinationPolicy of each service that has one,
	// keyed by its service, whose name it bears (spec defaulted).
	Policies map[ServiceKey]*v1alpha1.DestinationPolicySpec
}

// Fingerprint is a hash of the whole Input: equal fingerprints mean equal
// inputs, so a caller can skip translating an Input it has seen before.
func (in *Input) Fingerprint() (string, error) {
	h := sha256.New()
	var n [8]byte
	write := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	writeJSON := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		write(b)
		return nil
	}
	// Length prefixes keep field boundaries; JSON sorts map keys.
	write([]byte(in.TrustDomain))
	write(in.TrustBundlePEM)
	if err := writeJSON(in.Mesh); err != nil {
		return "", fmt.Errorf("translate: fingerprint mesh: %w", err)
	}
	for _, key := range slices.SortedFunc(maps.Keys(in.Services), compareKeys) {
		write([]byte(key.Namespace))
		write([]byte(key.Name))
		if err := writeJSON(in.Services[key]); err != nil {
			return "", fmt.Errorf("translate: fingerprint service %s: %w", host(key), err)
		}
	}
	write(nil) // ends the services
	for _, key := range slices.SortedFunc(maps.Keys(in.Routes), compareKeys) {
		write([]byte(key.Namespace))
		write([]byte(key.Name))
		if err := writeJSON(in.Routes[key]); err != nil {
			return "", fmt.Errorf("translate: fingerprint route of %s: %w", host(key), err)
		}
	}
	write(nil) // ends the routes
	for _, key := range slices.SortedFunc(maps.Keys(in.Policies), compareKeys) {
		write([]byte(key.Namespace))
		write([]byte(key.Name))
		if err := writeJSON(in.Policies[key]); err != nil {
			return "", fmt.Errorf("translate: fingerprint destination policy of %s: %w", host(key), err)
		}
	}
	write(nil) // ends the policies
	opts := proto.MarshalOptions{Deterministic: true}
	var buf []byte
	for _, key := range slices.SortedFunc(maps.Keys(in.Workloads), compareKeys) {
		write([]byte(key.Namespace))
		write([]byte(key.Name))
		binary.BigEndian.PutUint64(n[:], uint64(len(in.Workloads[key])))
		h.Write(n[:])
		for _, w := range in.Workloads[key] {
			var err error
			if buf, err = opts.MarshalAppend(buf[:0], w); err != nil {
				return "", fmt.Errorf("translate: fingerprint workload %q: %w", w.GetId(), err)
			}
			write(buf)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}
