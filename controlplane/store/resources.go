package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// What Apply did to each object.
const (
	ActionCreated    = "created"
	ActionConfigured = "configured"
	ActionUnchanged  = "unchanged"
)

// MaxApplyObjects is the most objects one Apply takes: etcd's default limit
// on the operations of one transaction (128), less one kept for the audit
// entry that ApplyRecorded writes with them.
const MaxApplyObjects = 127

// maxApplyAttempts bounds how often Apply re-reads and retries when another
// writer changed one of its keys between the read and the write.
const maxApplyAttempts = 5

// ApplyResult says what Apply did to one object.
type ApplyResult struct {
	Kind      string
	Namespace string
	Name      string
	// Action is ActionCreated, ActionConfigured or ActionUnchanged.
	Action string
}

// Change is an object that ApplyRecorded creates or configures, with its
// stored JSON before (nil when it is created) and after.
type Change struct {
	ApplyResult
	Before, After []byte
}

// pendingObject is one object of an Apply, encoded once up front.
type pendingObject struct {
	kind, namespace, name string
	key                   string
	value                 []byte
}

// Apply writes objs in one etcd transaction: either every object is stored or
// none is. Objects whose stored form is already identical are left alone and
// reported unchanged. If another writer changes one of the keys between the
// read and the write, Apply reads again and retries.
//
// Apply does not default or validate specs: that is the API server's job.
// It does reject what would corrupt the key space: unknown kinds, a namespace
// on a cluster-scoped kind (or none on a namespaced one), names with '/', and
// the same object twice.
func (s *Store) Apply(ctx context.Context, objs []*v1alpha1.Object) ([]ApplyResult, error) {
	return s.ApplyRecorded(ctx, objs, nil)
}

// ApplyRecorded is Apply, and when also is not nil and something changes,
// it commits the operation also returns for the changes (an audit entry,
// say) in the same transaction as the objects.
func (s *Store) ApplyRecorded(ctx context.Context, objs []*v1alpha1.Object, also func([]Change) (clientv3.Op, error)) ([]ApplyResult, error) {
	if len(objs) > MaxApplyObjects {
		return nil, fmt.Errorf("store: apply: %d objects, at most %d fit in one transaction", len(objs), MaxApplyObjects)
	}
	pending := make([]pendingObject, len(objs))
	seen := make(map[string]int, len(objs))
	for i, obj := range objs {
		p, err := prepare(obj)
		if err != nil {
			return nil, fmt.Errorf("store: apply: item %d: %w", i, err)
		}
		if j, dup := seen[p.key]; dup {
			return nil, fmt.Errorf("store: apply: items %d and %d are both %s %q", j, i,
				strings.ToLower(p.kind), qualifiedName(p.namespace, p.name))
		}
		seen[p.key] = i
		pending[i] = p
	}
	if len(pending) == 0 {
		return nil, nil
	}
	for attempt := 1; attempt <= maxApplyAttempts; attempt++ {
		results, ok, err := s.tryApply(ctx, pending, also)
		if err != nil || ok {
			return results, err
		}
	}
	return nil, fmt.Errorf("store: apply: keys kept changing under concurrent writers; gave up after %d attempts", maxApplyAttempts)
}

// tryApply reads the current values at one revision and writes the changed
// objects only if none of the keys moved since. ok is false when they did.
func (s *Store) tryApply(ctx context.Context, pending []pendingObject, also func([]Change) (clientv3.Op, error)) (results []ApplyResult, ok bool, err error) {
	gets := make([]clientv3.Op, len(pending))
	for i, p := range pending {
		gets[i] = clientv3.OpGet(p.key)
	}
	read, err := s.client.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return nil, false, fmt.Errorf("store: apply: read current objects: %w", err)
	}
	results = make([]ApplyResult, len(pending))
	cmps := make([]clientv3.Cmp, 0, len(pending))
	var puts []clientv3.Op
	var changes []Change
	for i, p := range pending {
		var rev int64
		var before []byte
		action := ActionCreated
		if kvs := read.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			rev = kvs[0].ModRevision
			before = kvs[0].Value
			action = ActionConfigured
			if bytes.Equal(kvs[0].Value, p.value) {
				action = ActionUnchanged
			}
		}
		// Unchanged keys are compared too: the results then describe one
		// consistent revision of every key in the apply.
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(p.key), "=", rev))
		if action != ActionUnchanged {
			puts = append(puts, clientv3.OpPut(p.key, string(p.value)))
		}
		results[i] = ApplyResult{Kind: p.kind, Namespace: p.namespace, Name: p.name, Action: action}
		if action != ActionUnchanged {
			changes = append(changes, Change{ApplyResult: results[i], Before: before, After: p.value})
		}
	}
	if len(puts) == 0 {
		return results, true, nil
	}
	if also != nil {
		op, err := also(changes)
		if err != nil {
			return nil, false, fmt.Errorf("store: apply: %w", err)
		}
		puts = append(puts, op)
	}
	if s.beforeApplyCommit != nil {
		s.beforeApplyCommit()
	}
	write, err := s.client.Txn(ctx).If(cmps...).Then(puts...).Commit()
	if err != nil {
		return nil, false, fmt.Errorf("store: apply: write %d objects: %w", len(puts), err)
	}
	return results, write.Succeeded, nil
}

// prepare checks one object and encodes it.
func prepare(obj *v1alpha1.Object) (pendingObject, error) {
	if obj == nil {
		return pendingObject{}, errors.New("object is nil")
	}
	kind, err := canonicalKind(obj.Kind)
	if err != nil {
		return pendingObject{}, err
	}
	if obj.Kind != kind.Name {
		// Only the exact spelling decodes again; aliases are for the CLI.
		return pendingObject{}, fmt.Errorf("kind %q must be written %q", obj.Kind, kind.Name)
	}
	ns, name := obj.Metadata.Namespace, obj.Metadata.Name
	if err := checkNames(kind, ns, name); err != nil {
		return pendingObject{}, err
	}
	if obj.Spec == nil {
		return pendingObject{}, fmt.Errorf("%s %q: spec is missing", strings.ToLower(kind.Name), qualifiedName(ns, name))
	}
	value, err := encodeObject(obj)
	if err != nil {
		return pendingObject{}, err
	}
	return pendingObject{
		kind: kind.Name, namespace: ns, name: name,
		key:   ResourceKey(kind.Name, ns, name),
		value: value,
	}, nil
}

// canonicalKind resolves a kind as the user or the API server spelled it.
func canonicalKind(kind string) (v1alpha1.Kind, error) {
	k, ok := v1alpha1.Lookup(kind)
	if !ok {
		return v1alpha1.Kind{}, fmt.Errorf("unknown kind %q", kind)
	}
	return k, nil
}

// checkNames enforces the key shape: a namespace exactly for namespaced
// kinds, and no '/' anywhere.
func checkNames(kind v1alpha1.Kind, namespace, name string) error {
	lower := strings.ToLower(kind.Name)
	if err := checkSegment(lower+" name", name); err != nil {
		return err
	}
	if !kind.Namespaced {
		if namespace != "" {
			return fmt.Errorf("%s %q is cluster-scoped but has namespace %q", lower, name, namespace)
		}
		return nil
	}
	if err := checkSegment(fmt.Sprintf("namespace of %s %q", lower, name), namespace); err != nil {
		return err
	}
	return nil
}

// Get returns one resource, with ResourceVersion set. A missing resource
// gives an error that matches ErrNotFound.
func (s *Store) Get(ctx context.Context, kind, namespace, name string) (*v1alpha1.Object, error) {
	k, err := canonicalKind(kind)
	if err != nil {
		return nil, fmt.Errorf("store: get: %w", err)
	}
	if err := checkNames(k, namespace, name); err != nil {
		return nil, fmt.Errorf("store: get: %w", err)
	}
	resp, err := s.client.Get(ctx, ResourceKey(k.Name, namespace, name))
	if err != nil {
		return nil, fmt.Errorf("store: get %s %q: %w", strings.ToLower(k.Name), qualifiedName(namespace, name), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, &notFoundError{kind: k.Name, namespace: namespace, name: name}
	}
	return DecodeObject(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// List returns the resources of one kind in namespace, or in every namespace
// when namespace is empty, sorted by namespace and name.
func (s *Store) List(ctx context.Context, kind, namespace string) ([]*v1alpha1.Object, error) {
	k, err := canonicalKind(kind)
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	prefix := PrefixResources + strings.ToLower(k.Name) + "/"
	if namespace != "" {
		if !k.Namespaced {
			return nil, fmt.Errorf("store: list: %s is cluster-scoped; namespace %q makes no sense", strings.ToLower(k.Name), namespace)
		}
		if err := checkSegment("namespace", namespace); err != nil {
			return nil, fmt.Errorf("store: list: %w", err)
		}
		prefix += namespace + "/"
	}
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", strings.ToLower(k.Name), err)
	}
	objs := make([]*v1alpha1.Object, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		obj, err := DecodeObject(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, fmt.Errorf("store: list: %s: %w", kv.Key, err)
		}
		objs = append(objs, obj)
	}
	// etcd sorts by key bytes, which is not namespace-then-name order once
	// names contain characters that sort before '/', such as '-' and '.'.
	sort.Slice(objs, func(i, j int) bool {
		a, b := objs[i].Metadata, objs[j].Metadata
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return objs, nil
}

// Delete removes one resource. A missing resource gives an error that matches
// ErrNotFound.
func (s *Store) Delete(ctx context.Context, kind, namespace, name string) error {
	k, err := canonicalKind(kind)
	if err != nil {
		return fmt.Errorf("store: delete: %w", err)
	}
	if err := checkNames(k, namespace, name); err != nil {
		return fmt.Errorf("store: delete: %w", err)
	}
	resp, err := s.client.Delete(ctx, ResourceKey(k.Name, namespace, name))
	if err != nil {
		return fmt.Errorf("store: delete %s %q: %w", strings.ToLower(k.Name), qualifiedName(namespace, name), err)
	}
	if resp.Deleted == 0 {
		return &notFoundError{kind: k.Name, namespace: namespace, name: name}
	}
	return nil
}

// DeleteRecorded is Delete, and commits the operation also returns for the
// object's stored JSON (an audit entry, say) in the same transaction. If
// another writer changes the object between the read and the delete, it
// reads again and retries.
func (s *Store) DeleteRecorded(ctx context.Context, kind, namespace, name string, also func(before []byte) (clientv3.Op, error)) error {
	if also == nil {
		return s.Delete(ctx, kind, namespace, name)
	}
	k, err := canonicalKind(kind)
	if err != nil {
		return fmt.Errorf("store: delete: %w", err)
	}
	if err := checkNames(k, namespace, name); err != nil {
		return fmt.Errorf("store: delete: %w", err)
	}
	key := ResourceKey(k.Name, namespace, name)
	for attempt := 1; attempt <= maxApplyAttempts; attempt++ {
		cur, err := s.client.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("store: delete %s %q: %w", strings.ToLower(k.Name), qualifiedName(namespace, name), err)
		}
		if len(cur.Kvs) == 0 {
			return &notFoundError{kind: k.Name, namespace: namespace, name: name}
		}
		op, err := also(cur.Kvs[0].Value)
		if err != nil {
			return fmt.Errorf("store: delete %s %q: %w", strings.ToLower(k.Name), qualifiedName(namespace, name), err)
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", cur.Kvs[0].ModRevision)).
			Then(clientv3.OpDelete(key), op).
			Commit()
		if err != nil {
			return fmt.Errorf("store: delete %s %q: %w", strings.ToLower(k.Name), qualifiedName(namespace, name), err)
		}
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("store: delete %s %q: it kept changing under concurrent writers; gave up after %d attempts",
		strings.ToLower(k.Name), qualifiedName(namespace, name), maxApplyAttempts)
}
