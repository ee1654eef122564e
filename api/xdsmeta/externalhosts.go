package xdsmeta

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// ExternalHostsMetadataNamespace is the filter_metadata key, on the
// outbound capture listener beside the VIP table, of the ExternalService
// hosts whose addresses the sidecar's DNS resolver answers: a Struct from
// the host name to a list of IP address strings. It is a key of its own,
// so a proxy that does not know it keeps reading the VIP table unchanged.
const ExternalHostsMetadataNamespace = "weft.external_hosts"

// ExternalHostTable maps an ExternalService host (an exact, lowercase DNS
// name) to the static endpoint addresses it resolves to in a transparent
// pod: the addresses the outbound capture listener routes for it.
type ExternalHostTable map[string][]netip.Addr

// AddTo adds the table to md under ExternalHostsMetadataNamespace; an
// empty table adds nothing.
func (t ExternalHostTable) AddTo(md *corev3.Metadata) {
	if len(t) == 0 {
		return
	}
	fields := make(map[string]*structpb.Value, len(t))
	for host, addrs := range t {
		vs := make([]*structpb.Value, len(addrs))
		for i, a := range addrs {
			vs[i] = structpb.NewStringValue(a.String())
		}
		fields[host] = structpb.NewListValue(&structpb.ListValue{Values: vs})
	}
	if md.FilterMetadata == nil {
		md.FilterMetadata = map[string]*structpb.Struct{}
	}
	md.FilterMetadata[ExternalHostsMetadataNamespace] = &structpb.Struct{Fields: fields}
}

// ExternalHostTableFromListener reads the external host table of the
// outbound capture listener (nil, nil for a listener without one).
func ExternalHostTableFromListener(l *listenerv3.Listener) (ExternalHostTable, error) {
	md := l.GetMetadata().GetFilterMetadata()[ExternalHostsMetadataNamespace]
	if md == nil {
		return nil, nil
	}
	return ExternalHostTableFromStruct(md)
}

// ExternalHostTableFromStruct decodes the metadata Struct AddTo encodes,
// and says which entry is malformed.
func ExternalHostTableFromStruct(s *structpb.Struct) (ExternalHostTable, error) {
	t := make(ExternalHostTable, len(s.GetFields()))
	for host, v := range s.GetFields() {
		if host == "" || host != strings.ToLower(host) || strings.HasPrefix(host, "*") || strings.HasSuffix(host, ".") {
			return nil, fmt.Errorf("external hosts: %q: want an exact lowercase host name", host)
		}
		addrs, err := ExternalHostAddrs(v)
		if err != nil {
			return nil, fmt.Errorf("external hosts: %q: %w", host, err)
		}
		t[host] = addrs
	}
	return t, nil
}

// ExternalHostAddrs decodes one entry of the table: a non-empty list of
// IP address strings, without zones.
func ExternalHostAddrs(v *structpb.Value) ([]netip.Addr, error) {
	lv, ok := v.GetKind().(*structpb.Value_ListValue)
	if !ok || len(lv.ListValue.GetValues()) == 0 {
		return nil, fmt.Errorf("want a non-empty list of IP addresses")
	}
	addrs := make([]netip.Addr, 0, len(lv.ListValue.GetValues()))
	for _, e := range lv.ListValue.GetValues() {
		sv, ok := e.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return nil, fmt.Errorf("want IP address strings, got %v", e)
		}
		a, err := netip.ParseAddr(sv.StringValue)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address", sv.StringValue)
		}
		if !slices.Contains(addrs, a.Unmap()) {
			addrs = append(addrs, a.Unmap())
		}
	}
	return addrs, nil
}
