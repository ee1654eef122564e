package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/controlplane/store"
)

// An API credential reads weftadm_<id>_<secret>: id names its record at
// /weft/admin/<id>, and secret is 32 random bytes in base64url. The store
// keeps only the secret's SHA-256; with 256 random bits there is nothing for
// a slow password hash to protect.
const (
	adminPrefix      = "weftadm_"
	adminSecretBytes = 32
	maxAdminName     = 63
)

// ErrAdminInvalid is wrapped by every error that means an API credential
// itself is bad, as opposed to the store being unreachable.
var ErrAdminInvalid = errors.New("invalid API credential")

// The ways an API credential can be bad. Each wraps ErrAdminInvalid.
var (
	ErrAdminMalformed = fmt.Errorf("%w: malformed", ErrAdminInvalid)
	ErrAdminUnknown   = fmt.Errorf("%w: unknown or revoked", ErrAdminInvalid)
	ErrAdminMismatch  = fmt.Errorf("%w: wrong secret", ErrAdminInvalid)
	ErrAdminExpired   = fmt.Errorf("%w: expired", ErrAdminInvalid)
)

type adminRecord struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	SecretSHA256 string    `json:"secretSHA256"` // hex
	CreatedAt    time.Time `json:"createdAt"`
	// Role is empty in records written before roles existed: they were admins.
	Role       Role      `json:"role,omitempty"`
	Namespaces []string  `json:"namespaces,omitempty"`
	ExpiresAt  time.Time `json:"expiresAt,omitzero"`
}

func (r adminRecord) credential() Credential {
	role := r.Role
	if role == "" {
		role = RoleAdmin
	}
	return Credential{
		ID: r.ID, Name: r.Name, Role: role, Namespaces: slices.Clone(r.Namespaces),
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
	}
}

// CreateAdmin makes an admin credential for name and returns it. The secret
// is returned once and never stored.
func (i *Issuer) CreateAdmin(ctx context.Context, name string) (string, error) {
	secret, _, err := i.CreateCredential(ctx, CredentialSpec{Name: name, Role: RoleAdmin}, nil)
	return secret, err
}

// CreateCredential makes an API credential as spec says and returns it with
// its description. The secret is returned once and never stored. When also
// is not nil, the operation it returns (an audit entry, say) is committed in
// the same transaction as the credential's record.
func (i *Issuer) CreateCredential(ctx context.Context, spec CredentialSpec, also func(Credential) (clientv3.Op, error)) (string, Credential, error) {
	if err := spec.Validate(); err != nil {
		return "", Credential{}, fmt.Errorf("token: %w", err)
	}
	id := randomHex(adminIDBytes)
	secret := make([]byte, adminSecretBytes)
	_, _ = rand.Read(secret) // never fails
	sum := sha256.Sum256(secret)
	rec := adminRecord{
		ID:           id,
		Name:         spec.Name,
		SecretSHA256: hex.EncodeToString(sum[:]),
		CreatedAt:    i.now().UTC().Truncate(time.Second),
		Role:         spec.Role,
		Namespaces:   normalNamespaces(spec.Namespaces),
	}
	if spec.TTL > 0 {
		rec.ExpiresAt = rec.CreatedAt.Add(spec.TTL)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return "", Credential{}, fmt.Errorf("token: encode credential record: %w", err)
	}
	cred := rec.credential()
	key := store.PrefixAdmin + id
	txn := i.kv.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
	ops := []clientv3.Op{clientv3.OpPut(key, string(data))}
	if also != nil {
		op, err := also(cred)
		if err != nil {
			return "", Credential{}, fmt.Errorf("token: record credential %s: %w", id, err)
		}
		ops = append(ops, op)
	}
	resp, err := txn.Then(ops...).Commit()
	if err == nil && !resp.Succeeded {
		err = errors.New("credential ID already in use")
	}
	if err != nil {
		return "", Credential{}, fmt.Errorf("token: record credential %s: %w", id, err)
	}
	return adminPrefix + id + "_" + b64.EncodeToString(secret), cred, nil
}

// VerifyAdmin checks an API credential against its record and returns its
// ID. Errors that mean the credential is bad wrap ErrAdminInvalid; none
// repeats the secret.
func (i *Issuer) VerifyAdmin(ctx context.Context, credential string) (string, error) {
	c, err := i.Authenticate(ctx, credential)
	return c.ID, err
}

// Authenticate checks an API credential against its record and returns what
// it may do. Errors that mean the credential is bad wrap ErrAdminInvalid;
// none repeats the secret.
func (i *Issuer) Authenticate(ctx context.Context, credential string) (Credential, error) {
	id, secret, err := parseAdmin(credential)
	if err != nil {
		return Credential{}, fmt.Errorf("token: %w", err)
	}
	rec, _, err := i.adminRecord(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Credential{}, fmt.Errorf("token: %w: %s", ErrAdminUnknown, id)
	}
	if err != nil {
		return Credential{}, err
	}
	want, err := hex.DecodeString(rec.SecretSHA256)
	if err != nil || len(want) != sha256.Size {
		return Credential{}, fmt.Errorf("token: credential record %s holds no valid SHA-256", id)
	}
	got := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return Credential{}, fmt.Errorf("token: %w: %s", ErrAdminMismatch, id)
	}
	if !rec.ExpiresAt.IsZero() && i.now().After(rec.ExpiresAt.Add(clockSkew)) {
		return Credential{}, fmt.Errorf("token: %w: %s (%q) expired at %s", ErrAdminExpired, id, rec.Name,
			rec.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return rec.credential(), nil
}

// RevokeAdmin deletes an API credential's record. It returns an error
// wrapping ErrNotFound when there is none.
func (i *Issuer) RevokeAdmin(ctx context.Context, id string) error {
	_, err := i.RevokeCredential(ctx, id, nil)
	return err
}

// RevokeCredential deletes an API credential's record and returns what it
// was; the credential is refused from then on, by every replica. When also
// is not nil, its operation is committed in the same transaction. It returns
// an error wrapping ErrNotFound when there is no such credential.
func (i *Issuer) RevokeCredential(ctx context.Context, id string, also func(Credential) (clientv3.Op, error)) (Credential, error) {
	if !isHex(id, adminIDBytes) {
		return Credential{}, fmt.Errorf("token: %w: %q is not a credential ID (%d hex digits)", ErrBadID, id, 2*adminIDBytes)
	}
	rec, rev, err := i.adminRecord(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Credential{}, fmt.Errorf("token: revoke credential %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Credential{}, err
	}
	cred := rec.credential()
	key := store.PrefixAdmin + id
	ops := []clientv3.Op{clientv3.OpDelete(key)}
	if also != nil {
		op, err := also(cred)
		if err != nil {
			return Credential{}, fmt.Errorf("token: revoke credential %s: %w", id, err)
		}
		ops = append(ops, op)
	}
	resp, err := i.kv.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(ops...).Commit()
	if err != nil {
		return Credential{}, fmt.Errorf("token: revoke credential %s: %w", id, err)
	}
	if !resp.Succeeded {
		// Records are never rewritten: it was revoked meanwhile.
		return Credential{}, fmt.Errorf("token: revoke credential %s: %w", id, ErrNotFound)
	}
	return cred, nil
}

// LookupCredential describes one API credential. It returns an error
// wrapping ErrNotFound when there is none.
func (i *Issuer) LookupCredential(ctx context.Context, id string) (Credential, error) {
	if !isHex(id, adminIDBytes) {
		return Credential{}, fmt.Errorf("token: %w: %q is not a credential ID (%d hex digits)", ErrBadID, id, 2*adminIDBytes)
	}
	rec, _, err := i.adminRecord(ctx, id)
	if err != nil {
		return Credential{}, err
	}
	return rec.credential(), nil
}

// ListCredentials describes every API credential, oldest first.
func (i *Issuer) ListCredentials(ctx context.Context) ([]Credential, error) {
	resp, err := i.kv.Get(ctx, store.PrefixAdmin, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("token: list credentials: %w", err)
	}
	creds := make([]Credential, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var rec adminRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("token: decode %s: %w", kv.Key, err)
		}
		creds = append(creds, rec.credential())
	}
	slices.SortFunc(creds, func(a, b Credential) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return creds, nil
}

// adminRecord reads a credential's record and the revision that wrote it.
func (i *Issuer) adminRecord(ctx context.Context, id string) (adminRecord, int64, error) {
	resp, err := i.kv.Get(ctx, store.PrefixAdmin+id)
	if err != nil {
		return adminRecord{}, 0, fmt.Errorf("token: look up credential %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return adminRecord{}, 0, fmt.Errorf("token: credential %s: %w", id, ErrNotFound)
	}
	var rec adminRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return adminRecord{}, 0, fmt.Errorf("token: decode credential %s: %w", id, err)
	}
	return rec, resp.Kvs[0].ModRevision, nil
}

// parseAdmin splits a credential into its ID and raw secret. The ID is hex,
// so the first '_' after the prefix ends it even though base64url secrets
// may hold '_' too.
func parseAdmin(credential string) (id string, secret []byte, err error) {
	rest, ok := strings.CutPrefix(credential, adminPrefix)
	if !ok {
		return "", nil, fmt.Errorf("%w: does not start with %q", ErrAdminMalformed, adminPrefix)
	}
	id, encoded, ok := strings.Cut(rest, "_")
	if !ok || !isHex(id, adminIDBytes) {
		return "", nil, fmt.Errorf("%w: want %s<id>_<secret>", ErrAdminMalformed, adminPrefix)
	}
	if len(encoded) != b64.EncodedLen(adminSecretBytes) {
		return "", nil, fmt.Errorf("%w: secret is not %d bytes of base64url", ErrAdminMalformed, adminSecretBytes)
	}
	secret, err = b64.DecodeString(encoded)
	if err != nil {
		return "", nil, fmt.Errorf("%w: secret is not %d bytes of base64url", ErrAdminMalformed, adminSecretBytes)
	}
	return id, secret, nil
}

func validAdminName(s string) bool {
	if len(s) == 0 || len(s) > maxAdminName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._@-", c) >= 0) {
			return false
		}
	}
	return true
}
