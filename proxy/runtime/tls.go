package runtime

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/tlsx"
	"github.com/weftmesh/weft/proxy/xdswire"
)

const tlsTransportSocket = "envoy.transport_sockets.tls"

// noClientCertificate is the identity of an upstream TLS context that names
// no certificate: the handshake then presents none.
var noClientCertificate = tlsx.IdentityFunc(func() *tls.Certificate { return &tls.Certificate{} })

// downstreamTLS compiles the DownstreamTlsContext of a listener's filter chain.
func (b *builder) downstreamTLS(ts *corev3.TransportSocket, path string) (*tls.Config, error) {
	ctx := &tlsv3.DownstreamTlsContext{}
	if err := unpackTransportSocket(ts, ctx); err != nil {
		return nil, wrapPath(path, err)
	}
	path = join(path, "typed_config("+fullName(ctx)+")")
	cpath := join(path, "common_tls_context")
	common := ctx.GetCommonTlsContext()
	if servesSecretCertificate(ctx) {
		return b.gatewayTLS(ctx, path)
	}
	if err := checkTLSParams(common.GetTlsParams(), join(cpath, "tls_params")); err != nil {
		return nil, err
	}
	id, err := b.certificate(common, cpath)
	if err != nil {
		return nil, err
	}
	if id == nil {
		return nil, pathErr(join(cpath, "tls_certificate_sds_secret_configs"), "a listener needs a certificate")
	}
	v, err := b.validator(common, cpath, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	require := ctx.GetRequireClientCertificate().GetValue()
	switch {
	case v != nil:
		v.Optional = !require
	case require:
		return nil, pathErr(join(path, "require_client_certificate"), "a client certificate cannot be required without a validation context")
	}
	return tlsx.ServerConfig(id, v, common.GetAlpnProtocols()), nil
}

// upstreamTLS compiles the UpstreamTlsContext of a cluster.
func (b *builder) upstreamTLS(ts *corev3.TransportSocket, path string) (*tls.Config, error) {
	ctx := &tlsv3.UpstreamTlsContext{}
	if err := unpackTransportSocket(ts, ctx); err != nil {
		return nil, wrapPath(path, err)
	}
	path = join(path, "typed_config("+fullName(ctx)+")")
	cpath := join(path, "common_tls_context")
	common := ctx.GetCommonTlsContext()
	if err := checkTLSParams(common.GetTlsParams(), join(cpath, "tls_params")); err != nil {
		return nil, err
	}
	id, err := b.certificate(common, cpath)
	if err != nil {
		return nil, err
	}
	if id == nil {
		id = noClientCertificate
	}
	v, err := b.validator(common, cpath, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, pathErr(cpath, "a validation context is required: upstreams are never trusted unverified")
	}
	return tlsx.ClientConfig(id, v, common.GetAlpnProtocols(), ctx.GetSni()), nil
}

func unpackTransportSocket(ts *corev3.TransportSocket, into proto.Message) error {
	if n := ts.GetName(); n != tlsTransportSocket {
		return pathErr("name", "transport socket %q is not supported (only %s)", n, tlsTransportSocket)
	}
	return unpackAny(ts.GetTypedConfig(), into, "typed_config")
}

// unpackAny decodes a typed_config that must be of into's type.
func unpackAny(a *anypb.Any, into proto.Message, path string) error {
	want := into.ProtoReflect().Descriptor().FullName()
	if a == nil {
		return pathErr(path, "a %s is required", want)
	}
	if !a.MessageIs(into) {
		return pathErr(path, "%s is not valid here (want %s)", xdswire.TypeName(a), want)
	}
	if err := xdswire.UnmarshalAny(a, into); err != nil {
		return wrapPath(path+"("+string(want)+")", err)
	}
	return nil
}

// TrustBundle returns the trust bundle named name (an SDS validation
// context) of the configuration in service, or nil before it is received.
func (r *Runtime) TrustBundle(name string) *tlsx.TrustBundle { return r.bundle(name) }

// certificate resolves the context's certificate, nil when it names none.
// Only the proxy's own SVID, SDS secret "default", exists: the control plane
// never sends private keys.
func (b *builder) certificate(common *tlsv3.CommonTlsContext, path string) (tlsx.Identity, error) {
	certs := common.GetTlsCertificateSdsSecretConfigs()
	switch len(certs) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, pathErr(join(path, "tls_certificate_sds_secret_configs[1]"), "only one certificate is supported")
	}
	cpath := join(path, "tls_certificate_sds_secret_configs[0]")
	if n := certs[0].GetName(); n != xdsmeta.SecretDefault {
		return nil, pathErr(join(cpath, "name"), "certificate %q is not available: only the proxy's own SVID %q is", n, xdsmeta.SecretDefault)
	}
	if err := checkSDSConfig(certs[0], cpath); err != nil {
		return nil, err
	}
	return b.identity, nil
}

// validator compiles the context's validation: the trust bundle is an SDS
// secret looked up at every handshake, SAN matchers are fixed.
func (b *builder) validator(common *tlsv3.CommonTlsContext, path string, usage x509.ExtKeyUsage) (*tlsx.PeerValidator, error) {
	var (
		sds       *tlsv3.SdsSecretConfig
		defaults  *tlsv3.CertificateValidationContext
		sdsPath   string
		matchPath string
	)
	switch vc := common.GetValidationContextType().(type) {
	case nil:
		return nil, nil
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		sds, sdsPath = vc.ValidationContextSdsSecretConfig, join(path, "validation_context_sds_secret_config")
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		cpath := join(path, "combined_validation_context")
		sds, sdsPath = vc.CombinedValidationContext.GetValidationContextSdsSecretConfig(), join(cpath, "validation_context_sds_secret_config")
		defaults, matchPath = vc.CombinedValidationContext.GetDefaultValidationContext(), join(cpath, "default_validation_context")
		if sds == nil {
			return nil, pathErr(sdsPath, "the trust bundle must come from SDS")
		}
	default:
		return nil, pathErr(path, "validation context %T is not supported", vc)
	}
	if err := checkSDSConfig(sds, sdsPath); err != nil {
		return nil, err
	}
	if defaults.GetTrustedCa() != nil {
		return nil, pathErr(join(matchPath, "trusted_ca"), "the trust bundle must come from SDS")
	}
	name := sds.GetName()
	if name == "" {
		return nil, pathErr(join(sdsPath, "name"), "a secret name is required")
	}
	v := &tlsx.PeerValidator{BundleName: name, Usage: usage, Bundle: func() *tlsx.TrustBundle { return b.rt.bundle(name) }}
	for i, m := range defaults.GetMatchTypedSubjectAltNames() {
		mpath := fmt.Sprintf("%s.match_typed_subject_alt_names[%d]", matchPath, i)
		if m.GetSanType() == tlsv3.SubjectAltNameMatcher_DNS && usage == x509.ExtKeyUsageServerAuth {
			// A server outside the mesh (proxy/xdswire/spec_egress_test.go).
			if err := dnsSANMatcher(v, m.GetMatcher(), join(mpath, "matcher")); err != nil {
				return nil, err
			}
			continue
		}
		if m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI {
			return nil, pathErr(join(mpath, "san_type"), "SAN type %v is not supported (only URI: SPIFFE IDs, and DNS for upstreams)", m.GetSanType())
		}
		sm, err := stringMatcher(m.GetMatcher(), join(mpath, "matcher"))
		if err != nil {
			return nil, err
		}
		v.URISANs = append(v.URISANs, sm)
	}
	return v, nil
}

func stringMatcher(m *matcherv3.StringMatcher, path string) (tlsx.StringMatcher, error) {
	var (
		kind    tlsx.MatchKind
		pattern string
	)
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		kind, pattern = tlsx.MatchExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		kind, pattern = tlsx.MatchPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		kind, pattern = tlsx.MatchSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		kind, pattern = tlsx.MatchContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		kind, pattern = tlsx.MatchRegex, p.SafeRegex.GetRegex()
	default:
		return tlsx.StringMatcher{}, pathErr(path, "a match pattern is required")
	}
	sm, err := tlsx.NewStringMatcher(kind, pattern, m.GetIgnoreCase())
	if err != nil {
		return tlsx.StringMatcher{}, &xdswire.FieldError{Path: path, Err: err}
	}
	return sm, nil
}

// checkTLSParams accepts what the proxy does anyway: TLS 1.3 only.
func checkTLSParams(p *tlsv3.TlsParameters, path string) error {
	if v := p.GetTlsMinimumProtocolVersion(); v != tlsv3.TlsParameters_TLS_AUTO && v != tlsv3.TlsParameters_TLSv1_3 {
		return pathErr(join(path, "tls_minimum_protocol_version"), "%v is not supported: the mesh speaks TLS 1.3 only", v)
	}
	if v := p.GetTlsMaximumProtocolVersion(); v != tlsv3.TlsParameters_TLS_AUTO && v != tlsv3.TlsParameters_TLSv1_3 {
		return pathErr(join(path, "tls_maximum_protocol_version"), "%v is not supported: the mesh speaks TLS 1.3 only", v)
	}
	return nil
}

// checkSDSConfig accepts secrets delivered over the ADS stream (or named
// without a source, as Envoy's static secrets are).
func checkSDSConfig(s *tlsv3.SdsSecretConfig, path string) error {
	if s.GetSdsConfig() == nil {
		return nil
	}
	return checkConfigSource(s.GetSdsConfig(), join(path, "sds_config"))
}

// checkConfigSource accepts the ADS stream, the proxy's only source.
func checkConfigSource(cs *corev3.ConfigSource, path string) error {
	if cs.GetAds() == nil {
		return pathErr(path, "only ADS is supported as a config source")
	}
	if v := cs.GetResourceApiVersion(); v != corev3.ApiVersion_AUTO && v != corev3.ApiVersion_V3 {
		return pathErr(join(path, "resource_api_version"), "%v is not supported", v)
	}
	return nil
}

// dnsSANMatcher sets the host name an external server's certificate must
// be valid for: one exact, case-sensitive DNS matcher, checked with x509's
// hostname rules (a certificate's wildcard covers one label).
func dnsSANMatcher(v *tlsx.PeerValidator, m *matcherv3.StringMatcher, path string) error {
	exact, ok := m.GetMatchPattern().(*matcherv3.StringMatcher_Exact)
	switch {
	case !ok:
		return pathErr(path, "a DNS SAN matcher must be exact (the server name)")
	case m.GetIgnoreCase():
		return pathErr(join(path, "ignore_case"), "is not supported for DNS SANs: host names compare without case anyway")
	case exact.Exact == "":
		return pathErr(join(path, "exact"), "a server name is required")
	case v.DNSName != "":
		return pathErr(path, "only one DNS SAN matcher is supported (have %q)", v.DNSName)
	}
	v.DNSName = exact.Exact
	return nil
}
