package meshstate

import (
	"maps"
	"net/netip"

	"github.com/weftmesh/weft/controlplane/translate"
	"github.com/weftmesh/weft/controlplane/vip"
)

// handleVIP applies a service's allocated VIP, or its release. The address
// index keys of the allocator are not translation's business.
func (w *Watcher) handleVIP(b *batch, key string, value []byte, deleted bool) {
	ns, name, ok := vip.ParseServiceKey(key)
	if !ok {
		return
	}
	svc := translate.ServiceKey{Namespace: ns, Name: name}
	if deleted {
		if _, had := b.next.VIPs[svc]; had {
			delete(b.vips(), svc)
			b.changed = true
		}
		return
	}
	ip, err := vip.ParseValue(value)
	if err != nil {
		w.warnOnce(key, "ignoring malformed VIP", "key", key, "err", err)
		return
	}
	if b.next.VIPs[svc] == ip {
		return
	}
	b.vips()[svc] = ip
	b.changed = true
}

// vips returns the batch's own VIPs map, cloning it on first use.
func (b *batch) vips() map[translate.ServiceKey]netip.Addr {
	if !b.ownVIPs {
		b.next.VIPs = maps.Clone(b.next.VIPs)
		if b.next.VIPs == nil {
			b.next.VIPs = make(map[translate.ServiceKey]netip.Addr)
		}
		b.ownVIPs = true
	}
	return b.next.VIPs
}
