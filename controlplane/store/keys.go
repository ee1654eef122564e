package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// ResourceKey returns the key of a resource:
// /weft/resources/<lowercase kind>/<namespace>/<name>, with an empty
// namespace for cluster-scoped kinds.
func ResourceKey(kind, namespace, name string) string {
	return PrefixResources + strings.ToLower(kind) + "/" + namespace + "/" + name
}

// ParseResourceKey splits a resource key into its lowercase kind, namespace
// and name.
func ParseResourceKey(key string) (kind, namespace, name string, err error) {
	rest, ok := strings.CutPrefix(key, PrefixResources)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("store: %q is not a resource key (want %s<kind>/<namespace>/<name>)", key, PrefixResources)
	}
	return parts[0], parts[1], parts[2], nil
}

// EndpointKey returns the key of a registered workload:
// /weft/endpoints/<namespace>/<service>/<id>.
func EndpointKey(namespace, service, id string) string {
	return PrefixEndpoints + namespace + "/" + service + "/" + id
}

// ParseEndpointKey splits an endpoint key into namespace, service and workload id.
func ParseEndpointKey(key string) (namespace, service, id string, err error) {
	rest, ok := strings.CutPrefix(key, PrefixEndpoints)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("store: %q is not an endpoint key (want %s<namespace>/<service>/<id>)", key, PrefixEndpoints)
	}
	return parts[0], parts[1], parts[2], nil
}

// DecodeObject decodes a stored resource and sets its ResourceVersion to
// modRevision, the revision that last wrote it.
func DecodeObject(value []byte, modRevision int64) (*v1alpha1.Object, error) {
	obj := new(v1alpha1.Object)
	if err := json.Unmarshal(value, obj); err != nil {
		return nil, fmt.Errorf("store: decode resource: %w", err)
	}
	if obj.Spec == nil {
		return nil, fmt.Errorf("store: decode resource %s %q: no spec", obj.Kind, obj.Metadata.Name)
	}
	obj.Metadata.ResourceVersion = modRevision
	return obj, nil
}

// encodeObject is the stored form of obj: its JSON without the resource
// version, which etcd keeps as the key's ModRevision.
func encodeObject(obj *v1alpha1.Object) ([]byte, error) {
	o := *obj
	o.Metadata.ResourceVersion = 0
	b, err := json.Marshal(&o)
	if err != nil {
		return nil, fmt.Errorf("store: encode %s %q: %w", obj.Kind, qualifiedName(obj.Metadata.Namespace, obj.Metadata.Name), err)
	}
	return b, nil
}

// DecodeWorkload decodes a stored workload.
func DecodeWorkload(value []byte) (*meshv1.Workload, error) {
	w := new(meshv1.Workload)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(value, w); err != nil {
		return nil, fmt.Errorf("store: decode workload: %w", err)
	}
	return w, nil
}

// checkSegment rejects key segments that would change the shape of a key.
func checkSegment(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case strings.Contains(s, "/"):
		return fmt.Errorf("%s %q contains '/'", what, s)
	}
	return nil
}

// qualifiedName is how a resource is named in messages: "namespace/name", or
// just "name" for cluster-scoped kinds.
func qualifiedName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// ErrNotFound is returned (wrapped) when a resource does not exist; test for
// it with errors.Is.
var ErrNotFound = errors.New("not found")

// notFoundError names the missing resource: `service "default/payments" not found`.
type notFoundError struct {
	kind, namespace, name string
}

func (e *notFoundError) Error() string {
	return fmt.Sprintf("%s %q not found", strings.ToLower(e.kind), qualifiedName(e.namespace, e.name))
}

func (e *notFoundError) Is(target error) bool { return target == ErrNotFound }
