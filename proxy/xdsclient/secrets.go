package xdsclient

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/runtime"
	"github.com/weftmesh/weft/proxy/xdswire"
)

// sdsNames are the SDS secrets to subscribe to: ROOTCA always, and every
// validation context the clusters' and listeners' TLS contexts name (the CA
// of an ExternalService the mesh originates TLS to, for one), and the
// certificates of gateway listeners, sorted. The proxy's own SVID
// ("default") is never asked for: it never comes over xDS. An ADS server answers only the names asked for, as
// Envoy asks for each SDS secret its configuration names.
func sdsNames(r *runtime.Resources) []string {
	set := map[string]struct{}{xdsmeta.SecretRootCA: {}}
	add := func(common *tlsv3.CommonTlsContext) {
		for _, n := range []string{
			common.GetValidationContextSdsSecretConfig().GetName(),
			common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName(),
		} {
			if n != "" {
				set[n] = struct{}{}
			}
		}
	}
	for _, c := range r.Clusters {
		up := &tlsv3.UpstreamTlsContext{}
		if unpackTLS(c.GetTransportSocket(), up) {
			add(up.GetCommonTlsContext())
		}
	}
	for _, l := range r.Listeners {
		for _, fc := range l.GetFilterChains() {
			down := &tlsv3.DownstreamTlsContext{}
			if unpackTLS(fc.GetTransportSocket(), down) {
				add(down.GetCommonTlsContext())
				// A gateway's certificates are the user's: the control
				// plane sends them (runtime/gateway_tls.go).
				for _, c := range down.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
					if n := c.GetName(); n != "" && n != xdsmeta.SecretDefault {
						set[n] = struct{}{}
					}
				}
			}
		}
	}
	return sortedKeys(set)
}

// unpackTLS decodes a transport socket's typed_config into ctx, reporting
// whether it holds one (the runtime rejects anything else).
func unpackTLS(ts *corev3.TransportSocket, ctx proto.Message) bool {
	tc := ts.GetTypedConfig()
	return tc != nil && tc.MessageIs(ctx) && xdswire.UnmarshalAny(tc, ctx) == nil
}
