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

// An admin credential reads weftadm_<id>_<secret>: id names its record at
// /weft/admin/<id>, and secret is 32 random bytes in base64url. The store
// keeps only the secret's SHA-256; with 256 random bits there is nothing for
// a slow password hash to protect.
const (
	adminPrefix      = "weftadm_"
	adminSecretBytes = 32
	maxAdminName     = 63
)

// ErrAdminInvalid is wrapped by every error that means an admin credential
// itself is bad, as opposed to the store being unreachable.
var ErrAdminInvalid = errors.New("invalid admin credential")

// The ways an admin credential can be bad. Each wraps ErrAdminInvalid.
var (
	ErrAdminMalformed = fmt.Errorf("%w: malformed", ErrAdminInvalid)
	ErrAdminUnknown   = fmt.Errorf("%w: unknown or revoked", ErrAdminInvalid)
	ErrAdminMismatch  = fmt.Errorf("%w: wrong secret", ErrAdminInvalid)
)

// Admin describes an admin credential, without its secret.
type Admin struct {
	ID        string
	Name      string // who or what holds it, for people reading audit logs
	CreatedAt time.Time
}

type adminRecord struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	SecretSHA256 string    `json:"secretSHA256"` // hex
	CreatedAt    time.Time `json:"createdAt"`
}

// CreateAdmin makes an admin credential for name and returns it. The secret
// is returned once and never stored.
func (i *Issuer) CreateAdmin(ctx context.Context, name string) (string, error) {
	if !validAdminName(name) {
		return "", fmt.Errorf("token: admin name %q: want 1 to %d letters, digits, '.', '_', '@' or '-'", name, maxAdminName)
	}
	id := randomHex(adminIDBytes)
	secret := make([]byte, adminSecretBytes)
	_, _ = rand.Read(secret) // never fails
	sum := sha256.Sum256(secret)
	data, err := json.Marshal(adminRecord{
		ID:           id,
		Name:         name,
		SecretSHA256: hex.EncodeToString(sum[:]),
		CreatedAt:    i.now().UTC().Truncate(time.Second),
	})
	if err != nil {
		return "", fmt.Errorf("token: encode admin record: %w", err)
	}
	if _, created, err := store.PutIfAbsent(ctx, i.kv, store.PrefixAdmin+id, data); err != nil || !created {
		if err == nil {
			err = errors.New("admin ID already in use")
		}
		return "", fmt.Errorf("token: record admin credential %s: %w", id, err)
	}
	return adminPrefix + id + "_" + b64.EncodeToString(secret), nil
}

// VerifyAdmin checks an admin credential against its record and returns its
// ID. Errors that mean the credential is bad wrap ErrAdminInvalid; none
// repeats the secret.
func (i *Issuer) VerifyAdmin(ctx context.Context, credential string) (string, error) {
	id, secret, err := parseAdmin(credential)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	rec, err := i.adminRecord(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("token: %w: %s", ErrAdminUnknown, id)
	}
	if err != nil {
		return "", err
	}
	want, err := hex.DecodeString(rec.SecretSHA256)
	if err != nil || len(want) != sha256.Size {
		return "", fmt.Errorf("token: admin record %s holds no valid SHA-256", id)
	}
	got := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return "", fmt.Errorf("token: %w: %s", ErrAdminMismatch, id)
	}
	return id, nil
}

// RevokeAdmin deletes an admin credential's record. It returns an error
// wrapping ErrNotFound when there is none.
func (i *Issuer) RevokeAdmin(ctx context.Context, id string) error {
	if !isHex(id, adminIDBytes) {
		return fmt.Errorf("token: %q is not an admin credential ID", id)
	}
	resp, err := i.kv.Delete(ctx, store.PrefixAdmin+id)
	if err != nil {
		return fmt.Errorf("token: revoke admin credential %s: %w", id, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("token: revoke admin credential %s: %w", id, ErrNotFound)
	}
	return nil
}

// ListAdmins describes every admin credential, oldest first.
func (i *Issuer) ListAdmins(ctx context.Context) ([]Admin, error) {
	resp, err := i.kv.Get(ctx, store.PrefixAdmin, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("token: list admin credentials: %w", err)
	}
	admins := make([]Admin, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var rec adminRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("token: decode %s: %w", kv.Key, err)
		}
		admins = append(admins, Admin{ID: rec.ID, Name: rec.Name, CreatedAt: rec.CreatedAt})
	}
	slices.SortFunc(admins, func(a, b Admin) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return admins, nil
}

func (i *Issuer) adminRecord(ctx context.Context, id string) (adminRecord, error) {
	resp, err := i.kv.Get(ctx, store.PrefixAdmin+id)
	if err != nil {
		return adminRecord{}, fmt.Errorf("token: look up admin credential %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return adminRecord{}, ErrNotFound
	}
	var rec adminRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return adminRecord{}, fmt.Errorf("token: decode admin credential %s: %w", id, err)
	}
	return rec, nil
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
