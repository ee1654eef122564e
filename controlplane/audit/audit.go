// Package audit records every change made through the control plane's API:
// who (the API credential), what (action, kind, namespace/name), when, and a
// unified diff of each object's YAML. Entries live in etcd under
// /weft/audit/, written in the same transaction as the change they describe,
// so every replica shares one log that survives restarts; the oldest are
// pruned beyond a count and an age.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/store"
)

// Retention defaults: an entry is pruned when it is older than DefaultMaxAge
// or when DefaultMaxEntries newer ones exist.
const (
	DefaultMaxEntries = 10000
	DefaultMaxAge     = 90 * 24 * time.Hour
)

// Bounds on what one entry holds, so that it fits in one etcd request with
// the change it describes (etcd refuses requests over 1.5 MiB by default).
const (
	maxDiffBytes  = 32 << 10  // one object's diff
	maxEntryDiffs = 128 << 10 // all the diffs of one entry
	// MaxListLimit bounds how many entries List returns at once.
	MaxListLimit = 1000
)

// Options configure a Log.
type Options struct {
	// MaxEntries and MaxAge bound the log; the defaults when not positive.
	MaxEntries int
	MaxAge     time.Duration
	// Log receives one structured line per entry; slog.Default() when nil.
	Log *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Log is the audit log in etcd. It is safe for concurrent use.
type Log struct {
	kv         *clientv3.Client
	log        *slog.Logger
	maxEntries int
	maxAge     time.Duration
	now        func() time.Time
}

// New returns the audit log kept in kv.
func New(kv *clientv3.Client, opts Options) *Log {
	l := &Log{kv: kv, log: opts.Log, maxEntries: opts.MaxEntries, maxAge: opts.MaxAge, now: opts.Now}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.maxEntries <= 0 {
		l.maxEntries = DefaultMaxEntries
	}
	if l.maxAge <= 0 {
		l.maxAge = DefaultMaxAge
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// Op stamps e with the time and a fresh ID and returns the operation that
// stores it, for the transaction that makes the change. Call Committed with
// the stamped entry once that transaction has succeeded.
func (l *Log) Op(e *client.AuditEntry) (clientv3.Op, error) {
	now := l.now().UTC()
	e.Time = now
	e.ID = entryID(now)
	boundDiffs(e.Changes)
	data, err := json.Marshal(e)
	if err != nil {
		return clientv3.Op{}, fmt.Errorf("audit: encode entry: %w", err)
	}
	return clientv3.OpPut(store.PrefixAudit+e.ID, string(data)), nil
}

// Committed logs an entry that its change's transaction stored, then prunes
// the log. A failure to prune is logged, not returned: the change is made.
func (l *Log) Committed(ctx context.Context, e client.AuditEntry) {
	for _, c := range e.Changes {
		l.log.Info("audit",
			"audit_id", e.ID,
			"action", e.Action,
			"credential_id", e.Who.CredentialID,
			"credential_name", e.Who.Name,
			"role", e.Who.Role,
			"remote", e.Who.Remote,
			"kind", c.Kind,
			"namespace", c.Namespace,
			"name", c.Name,
			"result", c.Result,
			"diff", c.Diff)
	}
	if err := l.prune(ctx); err != nil {
		l.log.Warn("audit: cannot prune old entries", "err", err)
	}
}

// Write stores an entry on its own, for changes that are not an etcd
// transaction of the control plane, and logs it.
func (l *Log) Write(ctx context.Context, e client.AuditEntry) error {
	op, err := l.Op(&e)
	if err != nil {
		return err
	}
	if _, err := l.kv.Do(ctx, op); err != nil {
		return fmt.Errorf("audit: write entry: %w", err)
	}
	l.Committed(ctx, e)
	return nil
}

// List returns the newest entries, newest first; limit is capped at
// MaxListLimit.
func (l *Log) List(ctx context.Context, limit int) ([]client.AuditEntry, error) {
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	resp, err := l.kv.Get(ctx, store.PrefixAudit, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	entries := make([]client.AuditEntry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e client.AuditEntry
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("audit: decode %s: %w", kv.Key, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// prune deletes entries older than the maximum age, then the oldest beyond
// the maximum count. Any replica may prune: deleting is idempotent.
func (l *Log) prune(ctx context.Context) error {
	cutoff := store.PrefixAudit + timeKey(l.now().UTC().Add(-l.maxAge))
	if _, err := l.kv.Delete(ctx, store.PrefixAudit, clientv3.WithRange(cutoff)); err != nil {
		return fmt.Errorf("delete entries older than %s: %w", l.maxAge, err)
	}
	count, err := l.kv.Get(ctx, store.PrefixAudit, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("count entries: %w", err)
	}
	excess := count.Count - int64(l.maxEntries)
	if excess <= 0 {
		return nil
	}
	oldest, err := l.kv.Get(ctx, store.PrefixAudit, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(excess))
	if err != nil {
		return fmt.Errorf("find the oldest entries: %w", err)
	}
	if len(oldest.Kvs) == 0 {
		return nil // another replica pruned them meanwhile
	}
	last := string(oldest.Kvs[len(oldest.Kvs)-1].Key)
	if _, err := l.kv.Delete(ctx, store.PrefixAudit, clientv3.WithRange(last+"\x00")); err != nil {
		return fmt.Errorf("delete the %d oldest entries: %w", excess, err)
	}
	return nil
}

// entryID orders entries by time: fixed-width Unix nanoseconds, then random
// bits so that replicas writing in the same nanosecond never collide.
func entryID(t time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // never fails
	return timeKey(t) + "-" + hex.EncodeToString(b)
}

func timeKey(t time.Time) string { return fmt.Sprintf("%020d", t.UnixNano()) }

// boundDiffs truncates diffs so that an entry stays small.
func boundDiffs(items []client.AuditItem) {
	total := 0
	for i := range items {
		d := items[i].Diff
		switch {
		case total >= maxEntryDiffs:
			d = "(diff omitted: this change's diffs exceed 128 KiB)\n"
		case len(d) > maxDiffBytes:
			cut := strings.LastIndexByte(d[:maxDiffBytes], '\n') + 1
			d = d[:cut] + fmt.Sprintf("(diff truncated: %d of %d bytes)\n", cut, len(d))
		}
		items[i].Diff = d
		total += len(d)
	}
}

// Diff returns the unified diff of an object's YAML between two stored JSON
// forms; either may be nil (created, deleted). ref names the object in the
// diff's header.
func Diff(ref string, before, after []byte) (string, error) {
	a, err := toYAML(before)
	if err != nil {
		return "", fmt.Errorf("audit: %s before: %w", ref, err)
	}
	b, err := toYAML(after)
	if err != nil {
		return "", fmt.Errorf("audit: %s after: %w", ref, err)
	}
	from, to := ref+" (before)", ref+" (after)"
	if before == nil {
		from = "/dev/null"
	}
	if after == nil {
		to = "/dev/null"
	}
	return Unified(from, to, a, b), nil
}

// DiffValues is Diff for values that are not stored objects, such as a join
// token's record: each is encoded as JSON first.
func DiffValues(ref string, before, after any) (string, error) {
	enc := func(v any) ([]byte, error) {
		if v == nil {
			return nil, nil
		}
		return json.Marshal(v)
	}
	a, err := enc(before)
	if err != nil {
		return "", fmt.Errorf("audit: %s: %w", ref, err)
	}
	b, err := enc(after)
	if err != nil {
		return "", fmt.Errorf("audit: %s: %w", ref, err)
	}
	return Diff(ref, a, b)
}

func toYAML(data []byte) (string, error) {
	if data == nil {
		return "", nil
	}
	y, err := yaml.JSONToYAML(data)
	if err != nil {
		return "", err
	}
	return string(y), nil
}
