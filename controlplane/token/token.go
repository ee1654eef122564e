// Package token issues and checks the control plane's bearer credentials:
// join tokens, with which a proxy proves its service and namespace once to
// obtain its first SVID, and API credentials, with which the CLI calls the
// API server, each with a role (admin, edit, view) and optionally limited to
// namespaces.
//
// Both are recorded in etcd, so any replica verifies what another issued, and
// deleting a record revokes its credential at once.
package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/controlplane/store"
)

// Bounds on a join token's lifetime.
const (
	MinTTL = time.Minute
	MaxTTL = 365 * 24 * time.Hour
)

const (
	keySigningKey = store.PrefixCA + "token-key"
	// clockSkew is how long past its expiry a token is still accepted, and how
	// far in the future its issue time may lie, for replicas whose clocks
	// disagree a little.
	clockSkew = 30 * time.Second
	// recordGrace keeps a record, on its etcd lease, a little longer than its
	// token is accepted, so that an expired token is reported as expired.
	recordGrace = 5 * time.Minute
)

// ErrNotFound is returned by Lookup, Revoke and their credential
// counterparts for an ID with no record.
var ErrNotFound = errors.New("not found")

// ErrBadID is wrapped by the errors of calls given an ID that cannot be one.
var ErrBadID = errors.New("malformed ID")

// Record is what the store keeps about a join token: everything but the
// signature, so listing tokens reveals none.
type Record struct {
	ID        string    `json:"id"`
	Service   string    `json:"service"`
	Namespace string    `json:"namespace"`
	IssuedAt  time.Time `json:"issuedAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Issuer creates and verifies join tokens and API credentials with a
// signing key shared, through the store, by every control plane replica. It
// is safe for concurrent use.
type Issuer struct {
	kv  *clientv3.Client
	key ed25519.PrivateKey
	pub ed25519.PublicKey
	now func() time.Time
}

// Option configures an Issuer.
type Option func(*Issuer)

// WithClock makes the Issuer read the time from now instead of time.Now.
func WithClock(now func() time.Time) Option {
	return func(i *Issuer) { i.now = now }
}

// NewIssuer loads the token signing key from the store, creating it on the
// first start; replicas starting together agree on one key.
func NewIssuer(ctx context.Context, kv *clientv3.Client, opts ...Option) (*Issuer, error) {
	key, err := loadOrCreateKey(ctx, kv)
	if err != nil {
		return nil, err
	}
	i := &Issuer{kv: kv, key: key, pub: key.Public().(ed25519.PublicKey), now: time.Now}
	for _, opt := range opts {
		opt(i)
	}
	return i, nil
}

func loadOrCreateKey(ctx context.Context, kv *clientv3.Client) (ed25519.PrivateKey, error) {
	resp, err := kv.Get(ctx, keySigningKey)
	if err != nil {
		return nil, fmt.Errorf("token: read signing key: %w", err)
	}
	if len(resp.Kvs) > 0 {
		return decodeKey(resp.Kvs[0].Value)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("token: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("token: encode signing key: %w", err)
	}
	stored, _, err := store.PutIfAbsent(ctx, kv, keySigningKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		return nil, fmt.Errorf("token: store signing key: %w", err)
	}
	return decodeKey(stored)
}

func decodeKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("token: signing key at %s is not a PEM PKCS #8 PRIVATE KEY", keySigningKey)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("token: signing key at %s: %w", keySigningKey, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("token: signing key at %s is %T, want Ed25519", keySigningKey, parsed)
	}
	return key, nil
}

// Create issues a join token for service in namespace, valid for ttl (from
// MinTTL to MaxTTL), and records it. The token is returned once and never
// stored; the record lets any replica verify it until it expires or is revoked.
func (i *Issuer) Create(ctx context.Context, service, namespace string, ttl time.Duration) (string, Record, error) {
	return i.CreateRecorded(ctx, service, namespace, ttl, nil)
}

// CreateRecorded is Create, and when also is not nil it commits the
// operation also returns (an audit entry, say) in the same transaction as
// the token's record.
func (i *Issuer) CreateRecorded(ctx context.Context, service, namespace string, ttl time.Duration, also func(Record) (clientv3.Op, error)) (string, Record, error) {
	if !validLabel(service) {
		return "", Record{}, fmt.Errorf("token: service %q is not a DNS label (lowercase letters, digits and '-', at most 63)", service)
	}
	if !validLabel(namespace) {
		return "", Record{}, fmt.Errorf("token: namespace %q is not a DNS label (lowercase letters, digits and '-', at most 63)", namespace)
	}
	if ttl < MinTTL || ttl > MaxTTL {
		return "", Record{}, fmt.Errorf("token: lifetime %s is outside [%s, %s]", ttl, MinTTL, MaxTTL)
	}
	now := i.now().UTC().Truncate(time.Second) // claims carry whole seconds
	rec := Record{
		ID:        randomHex(idBytes),
		Service:   service,
		Namespace: namespace,
		IssuedAt:  now,
		ExpiresAt: now.Add(ttl),
	}
	tok, err := encode(Claims(rec), i.key)
	if err != nil {
		return "", Record{}, err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return "", Record{}, fmt.Errorf("token: encode record: %w", err)
	}
	var extra []clientv3.Op
	if also != nil {
		op, err := also(rec)
		if err != nil {
			return "", Record{}, fmt.Errorf("token: record token %s: %w", rec.ID, err)
		}
		extra = append(extra, op)
	}
	// The record lives on a lease so that expired tokens leave the store by
	// themselves.
	lease, err := i.kv.Grant(ctx, int64((ttl+recordGrace)/time.Second))
	if err != nil {
		return "", Record{}, fmt.Errorf("token: grant lease for token %s: %w", rec.ID, err)
	}
	key := store.PrefixTokens + rec.ID
	resp, err := i.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(append([]clientv3.Op{clientv3.OpPut(key, string(data), clientv3.WithLease(lease.ID))}, extra...)...).
		Commit()
	if err == nil && !resp.Succeeded {
		err = errors.New("token ID already in use")
	}
	if err != nil {
		_, _ = i.kv.Revoke(context.WithoutCancel(ctx), lease.ID)
		return "", Record{}, fmt.Errorf("token: record token %s: %w", rec.ID, err)
	}
	return tok, rec, nil
}

// Verify checks a join token's format, signature and expiry, and that its
// record still exists. Errors that mean the token is bad wrap ErrInvalid;
// others are the store's. No error repeats the token.
func (i *Issuer) Verify(ctx context.Context, token string) (Claims, error) {
	c, err := decode(token, i.pub)
	if err != nil {
		return Claims{}, fmt.Errorf("token: %w", err)
	}
	now := i.now()
	if now.After(c.ExpiresAt.Add(clockSkew)) {
		return Claims{}, fmt.Errorf("token: %w: token %s for %s/%s expired at %s",
			ErrExpired, c.ID, c.Namespace, c.Service, c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if c.IssuedAt.After(now.Add(clockSkew)) {
		return Claims{}, fmt.Errorf("token: %w: token %s is issued at %s, in the future; are the control plane's clocks in sync?",
			ErrInvalid, c.ID, c.IssuedAt.UTC().Format(time.RFC3339))
	}
	rec, err := i.record(ctx, c.ID)
	if errors.Is(err, ErrNotFound) {
		return Claims{}, fmt.Errorf("token: %w: token %s for %s/%s", ErrRevoked, c.ID, c.Namespace, c.Service)
	}
	if err != nil {
		return Claims{}, err
	}
	if rec.Service != c.Service || rec.Namespace != c.Namespace {
		return Claims{}, fmt.Errorf("token: %w: token %s does not match its record", ErrInvalid, c.ID)
	}
	return c, nil
}

func (i *Issuer) record(ctx context.Context, id string) (Record, error) {
	rec, _, err := i.recordAt(ctx, id)
	return rec, err
}

// recordAt reads a token's record and the revision that wrote it.
func (i *Issuer) recordAt(ctx context.Context, id string) (Record, int64, error) {
	resp, err := i.kv.Get(ctx, store.PrefixTokens+id)
	if err != nil {
		return Record{}, 0, fmt.Errorf("token: look up token %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return Record{}, 0, ErrNotFound
	}
	var rec Record
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return Record{}, 0, fmt.Errorf("token: decode record of token %s: %w", id, err)
	}
	return rec, resp.Kvs[0].ModRevision, nil
}

// Lookup returns a join token's record. It returns an error wrapping
// ErrNotFound when there is none, including for a token that expired and
// left the store.
func (i *Issuer) Lookup(ctx context.Context, id string) (Record, error) {
	if !validID(id) {
		return Record{}, fmt.Errorf("token: %w: %q is not a token ID (%d hex digits)", ErrBadID, id, 2*idBytes)
	}
	rec, err := i.record(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Record{}, fmt.Errorf("token: token %s: %w", id, ErrNotFound)
	}
	return rec, err
}

// Revoke deletes a join token's record: the token is refused from then on,
// by every replica. It returns an error wrapping ErrNotFound when there is no
// such token, including one that expired and left the store.
func (i *Issuer) Revoke(ctx context.Context, id string) error {
	_, err := i.RevokeRecorded(ctx, id, nil)
	return err
}

// RevokeRecorded is Revoke, and returns the record it deleted; when also is
// not nil, the operation it returns is committed in the same transaction.
func (i *Issuer) RevokeRecorded(ctx context.Context, id string, also func(Record) (clientv3.Op, error)) (Record, error) {
	if !validID(id) {
		return Record{}, fmt.Errorf("token: %w: %q is not a token ID (%d hex digits)", ErrBadID, id, 2*idBytes)
	}
	rec, rev, err := i.recordAt(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Record{}, fmt.Errorf("token: revoke %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Record{}, err
	}
	key := store.PrefixTokens + id
	ops := []clientv3.Op{clientv3.OpDelete(key, clientv3.WithPrevKV())}
	if also != nil {
		op, err := also(rec)
		if err != nil {
			return Record{}, fmt.Errorf("token: revoke %s: %w", id, err)
		}
		ops = append(ops, op)
	}
	resp, err := i.kv.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(ops...).Commit()
	if err != nil {
		return Record{}, fmt.Errorf("token: revoke %s: %w", id, err)
	}
	if !resp.Succeeded {
		// Records are never rewritten: it was revoked, or expired, meanwhile.
		return Record{}, fmt.Errorf("token: revoke %s: %w", id, ErrNotFound)
	}
	// The record is gone; its lease would only linger until it expires.
	if prev := resp.Responses[0].GetResponseDeleteRange().GetPrevKvs(); len(prev) > 0 {
		if lease := clientv3.LeaseID(prev[0].Lease); lease != clientv3.NoLease {
			_, _ = i.kv.Revoke(ctx, lease)
		}
	}
	return rec, nil
}

// List returns the records of every join token that has not expired long
// ago, oldest first.
func (i *Issuer) List(ctx context.Context) ([]Record, error) {
	resp, err := i.kv.Get(ctx, store.PrefixTokens, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("token: list: %w", err)
	}
	recs := make([]Record, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var rec Record
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("token: decode %s: %w", kv.Key, err)
		}
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b Record) int {
		if c := a.IssuedAt.Compare(b.IssuedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return recs, nil
}
