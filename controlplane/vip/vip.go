// Package vip gives every Service a stable virtual IP for transparent mode,
// as Istio's auto-allocation does: allocated once from a range, kept in etcd
// beside the Service, never handed to another service while it exists, and
// released when it is deleted. A Service that declares spec.vip keeps its own.
package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
)

// DefaultRange is where VIPs come from unless configured otherwise: class E
// space no real host uses, as Istio's 240.240.0.0/16.
var DefaultRange = netip.MustParsePrefix("240.240.0.0/16")

// Keys: /weft/vips/svc/<namespace>/<name> holds the IP; /weft/vips/ip/<ip>
// holds "<namespace>/<name>", so that one transaction can claim both and no
// IP is ever held twice.
const (
	Prefix          = "/weft/vips/"
	PrefixByService = Prefix + "svc/"
	prefixByIP      = Prefix + "ip/"
)

// ServiceKey is the key of a service's allocated VIP.
func ServiceKey(namespace, name string) string { return PrefixByService + namespace + "/" + name }

func addressKey(ip netip.Addr) string { return prefixByIP + ip.String() }

// ParseServiceKey splits a ServiceKey; ok is false for any other key.
func ParseServiceKey(key string) (namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(key, PrefixByService)
	namespace, name, _ = strings.Cut(rest, "/")
	if !found || namespace == "" || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return namespace, name, true
}

// ParseValue reads an allocated VIP.
func ParseValue(v []byte) (netip.Addr, error) {
	ip, err := netip.ParseAddr(string(v))
	if err != nil || !ip.Is4() {
		return netip.Addr{}, fmt.Errorf("vip: stored value %q is not an IPv4 address", v)
	}
	return ip, nil
}

// Options configure an Allocator.
type Options struct {
	// Range is where VIPs are allocated; default DefaultRange.
	Range netip.Prefix
	Log   *slog.Logger
}

// Validate says what is wrong with the options, defaults applied.
func (o Options) Validate() error {
	if !o.Range.IsValid() || !o.Range.Addr().Is4() {
		return fmt.Errorf("vip: range %s: must be an IPv4 CIDR", o.Range)
	}
	if o.Range.Bits() > 30 {
		return fmt.Errorf("vip: range %s: too small (at most /30)", o.Range)
	}
	return nil
}

// Allocator keeps every Service's VIP allocated. Run it once per control
// plane; several control planes on one etcd agree through transactions.
type Allocator struct {
	client *clientv3.Client
	opts   Options
	log    *slog.Logger

	// own holds the revisions of the allocator's own writes (claims and
	// releases) that its VIP watch has not delivered yet: those events
	// tell it nothing new, and reconciling on each would read and decode
	// every Service once per VIP allocated. Touched by Run's goroutine only.
	own map[int64]bool
}

// New returns an Allocator of the store's client; it does nothing until Run.
func New(client *clientv3.Client, opts Options) (*Allocator, error) {
	if !opts.Range.IsValid() {
		opts.Range = DefaultRange
	}
	opts.Range = opts.Range.Masked()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	return &Allocator{client: client, opts: opts, log: log.With("component", "vip"), own: map[int64]bool{}}, nil
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// settle gathers a burst of changes (an apply of many Services) into
	// one reconcile.
	settle = 20 * time.Millisecond
)

// Run reconciles, then reconciles again after every change to Services or
// VIPs, until ctx is done (it then returns nil).
func (a *Allocator) Run(ctx context.Context) error {
	backoff := minBackoff
	for {
		err := a.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		a.log.Warn("vip allocation interrupted", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (a *Allocator) follow(ctx context.Context) error {
	rev, err := a.Reconcile(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	services := a.client.Watch(wctx, servicePrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	vips := a.client.Watch(wctx, Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	// next reads one watch response; changed says whether it holds a
	// change the allocator did not make itself.
	next := func(wait <-chan time.Time) (changed, timedOut bool, err error) {
		var resp clientv3.WatchResponse
		var ok, fromVIPs bool
		select {
		case <-ctx.Done():
			return false, false, ctx.Err()
		case <-wait:
			return false, true, nil
		case resp, ok = <-services:
		case resp, ok = <-vips:
			fromVIPs = true
		}
		if !ok {
			return false, false, errors.New("vip: watch closed")
		}
		if err := resp.Err(); err != nil {
			return false, false, fmt.Errorf("vip: watch: %w", err)
		}
		if fromVIPs {
			return a.foreign(resp), false, nil
		}
		return true, false, nil
	}
	for {
		changed, _, err := next(nil)
		if err != nil {
			return ignoreDone(ctx, err)
		}
		if !changed {
			continue
		}
		// Gather what else comes within settle: one reconcile for a burst.
		deadline := time.After(settle)
		for {
			_, timedOut, err := next(deadline)
			if err != nil {
				return ignoreDone(ctx, err)
			}
			if timedOut {
				break
			}
		}
		if _, err := a.Reconcile(ctx); err != nil {
			return err
		}
	}
}

// foreign reports whether a VIP watch response holds a write the allocator
// did not make itself, and forgets the revisions of its own that the watch
// has now delivered (it delivers in revision order).
func (a *Allocator) foreign(resp clientv3.WatchResponse) bool {
	foreign := false
	for _, ev := range resp.Events {
		foreign = foreign || !a.own[ev.Kv.ModRevision]
	}
	for rev := range a.own {
		if rev <= resp.Header.GetRevision() {
			delete(a.own, rev)
		}
	}
	return foreign
}

// ignoreDone is nil once ctx is done (Run returns then), else err.
func ignoreDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

var servicePrefix = store.PrefixResources + "service/"

// state is the Services and allocations at one revision.
type state struct {
	services map[string]*v1alpha1.ServiceSpec // by "<namespace>/<name>"
	bySvc    map[string]netip.Addr
	byIP     map[netip.Addr]string
	declared map[netip.Addr]bool
}

// Reconcile allocates a VIP to every Service without one and releases the
// VIPs of deleted Services. It returns the revision it read. Run calls it;
// it must not run beside Run on the same Allocator.
func (a *Allocator) Reconcile(ctx context.Context) (int64, error) {
	resp, err := a.client.Txn(ctx).Then(
		clientv3.OpGet(servicePrefix, clientv3.WithPrefix()),
		clientv3.OpGet(Prefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, fmt.Errorf("vip: read: %w", err)
	}
	st := state{services: map[string]*v1alpha1.ServiceSpec{}, bySvc: map[string]netip.Addr{},
		byIP: map[netip.Addr]string{}, declared: map[netip.Addr]bool{}}
	for _, kv := range resp.Responses[0].GetResponseRange().GetKvs() {
		_, ns, name, err := store.ParseResourceKey(string(kv.Key))
		if err != nil {
			continue
		}
		obj, err := store.DecodeObject(kv.Value, kv.ModRevision)
		if err != nil {
			a.log.Warn("skipping undecodable Service", "key", string(kv.Key), "err", err)
			continue
		}
		spec, _ := obj.Spec.(*v1alpha1.ServiceSpec)
		st.services[ns+"/"+name] = spec
		if spec != nil && spec.VIP != "" {
			if ip, err := netip.ParseAddr(spec.VIP); err == nil {
				st.declared[ip] = true
			}
		}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().GetKvs() {
		key := string(kv.Key)
		if ns, name, ok := ParseServiceKey(key); ok {
			if ip, err := ParseValue(kv.Value); err == nil {
				st.bySvc[ns+"/"+name] = ip
			}
		} else if ipStr, ok := strings.CutPrefix(key, prefixByIP); ok {
			if ip, err := netip.ParseAddr(ipStr); err == nil {
				st.byIP[ip] = string(kv.Value)
			}
		}
	}
	for svc, ip := range st.bySvc {
		if _, ok := st.services[svc]; !ok {
			if err := a.release(ctx, svc, ip); err != nil {
				return 0, err
			}
		}
	}
	for ip, svc := range st.byIP {
		if _, ok := st.services[svc]; !ok && st.bySvc[svc] != ip {
			// An address claim left without its service key.
			if err := a.release(ctx, svc, ip); err != nil {
				return 0, err
			}
		}
	}
	// In name order: the same state always allocates the same way.
	for _, svc := range slices.Sorted(maps.Keys(st.services)) {
		spec := st.services[svc]
		if _, ok := st.bySvc[svc]; ok || (spec != nil && spec.VIP != "") {
			continue
		}
		ip, ok := st.free(a.opts.Range)
		if !ok {
			a.log.Error("no VIP left to allocate", "service", svc, "range", a.opts.Range.String())
			continue
		}
		if err := a.claim(ctx, svc, ip); err != nil {
			return 0, err
		}
		st.byIP[ip], st.bySvc[svc] = svc, ip
	}
	return resp.Header.Revision, nil
}

// free returns the lowest address of r that nobody holds, skipping the
// network and broadcast addresses.
func (st *state) free(r netip.Prefix) (netip.Addr, bool) {
	ip := r.Addr().Next()
	for ; r.Contains(ip) && r.Contains(ip.Next()); ip = ip.Next() {
		if _, held := st.byIP[ip]; !held && !st.declared[ip] {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// claim takes ip for svc in one transaction that fails if either is taken;
// a failed claim is retried by the next reconcile, on fresh state.
func (a *Allocator) claim(ctx context.Context, svc string, ip netip.Addr) error {
	ns, name, _ := strings.Cut(svc, "/")
	sk, ak := ServiceKey(ns, name), addressKey(ip)
	resp, err := a.client.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(sk), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(ak), "=", 0),
	).Then(clientv3.OpPut(sk, ip.String()), clientv3.OpPut(ak, svc)).Commit()
	if err != nil {
		return fmt.Errorf("vip: allocate %s to %s: %w", ip, svc, err)
	}
	if resp.Succeeded {
		a.own[resp.Header.Revision] = true
		a.log.Info("allocated VIP", "service", svc, "vip", ip.String())
	}
	return nil
}

// release drops svc's hold on ip, only if it still holds it.
func (a *Allocator) release(ctx context.Context, svc string, ip netip.Addr) error {
	ns, name, _ := strings.Cut(svc, "/")
	sk, ak := ServiceKey(ns, name), addressKey(ip)
	for _, del := range []struct{ key, holds string }{{ak, svc}, {sk, ip.String()}} {
		resp, err := a.client.Txn(ctx).If(
			clientv3.Compare(clientv3.Value(del.key), "=", del.holds),
		).Then(clientv3.OpDelete(del.key)).Commit()
		if err != nil {
			return fmt.Errorf("vip: release %s of %s: %w", ip, svc, err)
		}
		if resp.Succeeded {
			a.own[resp.Header.Revision] = true
		}
	}
	a.log.Info("released VIP", "service", svc, "vip", ip.String())
	return nil
}
