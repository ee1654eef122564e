package runtime

import (
	"crypto/tls"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weftmesh/weft/api/xdsmeta"
)

// An ingress gateway terminates the TLS of clients outside the mesh with
// certificates the control plane sends as TlsCertificate secrets, unlike
// the SVID, whose key never leaves the proxy. The certificate is looked up
// in the configuration in service at each handshake, so a new secret
// (a rotated certificate) serves the next connection, listener untouched.

// certificateSecret compiles a TlsCertificate secret: inline PEM chain and
// key that must be a usable pair.
func (b *builder) certificateSecret(name string, s *tlsv3.Secret) error {
	if name == xdsmeta.SecretDefault {
		return pathErr("tls_certificate", "the proxy's own SVID %q never travels over xDS", name)
	}
	tc := s.GetTlsCertificate()
	chain, err := inlinePEM(tc.GetCertificateChain(), "tls_certificate.certificate_chain")
	if err != nil {
		return err
	}
	key, err := inlinePEM(tc.GetPrivateKey(), "tls_certificate.private_key")
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return pathErr("tls_certificate", "certificate_chain and private_key are not a usable pair: %w", err)
	}
	if b.next.certs == nil {
		b.next.certs = map[string]*tls.Certificate{}
	}
	b.next.certs[name] = &cert
	return nil
}

func inlinePEM(ds *corev3.DataSource, path string) ([]byte, error) {
	switch src := ds.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes:
		return src.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(src.InlineString), nil
	case nil:
		return nil, pathErr(path, "is required")
	}
	return nil, pathErr(path, "inline PEM is required")
}

// certificateNamed returns the TlsCertificate secret name of the
// configuration in service, nil when it has none such.
func (r *Runtime) certificateNamed(name string) *tls.Certificate { return r.cur.Load().certs[name] }

// gatewayTLS compiles the DownstreamTlsContext of a gateway filter chain:
// the certificate from a TlsCertificate secret, no client certificate,
// TLS 1.2 or 1.3.
func (b *builder) gatewayTLS(ctx *tlsv3.DownstreamTlsContext, path string) (*tls.Config, error) {
	cpath := join(path, "common_tls_context")
	common := ctx.GetCommonTlsContext()
	secret := common.GetTlsCertificateSdsSecretConfigs()[0]
	spath := join(cpath, "tls_certificate_sds_secret_configs[0]")
	if err := checkSDSConfig(secret, spath); err != nil {
		return nil, err
	}
	// The secret may come after the listener that names it (the proxy
	// subscribes to it once the listener is applied): until it does, the
	// handshakes of the chain fail, as Envoy's listener waits warming.
	name := secret.GetName()
	if name == "" {
		return nil, pathErr(join(spath, "name"), "a secret name is required")
	}
	minVersion, err := gatewayMinVersion(common.GetTlsParams(), join(cpath, "tls_params"))
	if err != nil {
		return nil, err
	}
	rt := b.rt
	return &tls.Config{
		MinVersion: minVersion,
		NextProtos: common.GetAlpnProtocols(),
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := rt.certificateNamed(name); c != nil {
				return c, nil
			}
			return nil, fmt.Errorf("runtime: certificate %q is gone", name)
		},
	}, nil
}

// gatewayMinVersion reads the TLS versions a gateway allows: from 1.2 or
// 1.3 (auto is 1.2, as in Envoy) up to 1.3.
func gatewayMinVersion(p *tlsv3.TlsParameters, path string) (uint16, error) {
	if v := p.GetTlsMaximumProtocolVersion(); v != tlsv3.TlsParameters_TLS_AUTO && v != tlsv3.TlsParameters_TLSv1_3 {
		return 0, pathErr(join(path, "tls_maximum_protocol_version"), "%v is not supported (only TLSv1_3)", v)
	}
	switch v := p.GetTlsMinimumProtocolVersion(); v {
	case tlsv3.TlsParameters_TLS_AUTO, tlsv3.TlsParameters_TLSv1_2:
		return tls.VersionTLS12, nil
	case tlsv3.TlsParameters_TLSv1_3:
		return tls.VersionTLS13, nil
	default:
		return 0, pathErr(join(path, "tls_minimum_protocol_version"), "%v is not supported (TLSv1_2 or TLSv1_3)", v)
	}
}

// servesSecretCertificate reports whether a downstream TLS context is a
// gateway's: a certificate other than the proxy's SVID, and no client
// verification. Anything else is the mesh's mTLS, compiled (and refused
// when it names another certificate) by downstreamTLS.
func servesSecretCertificate(ctx *tlsv3.DownstreamTlsContext) bool {
	common := ctx.GetCommonTlsContext()
	certs := common.GetTlsCertificateSdsSecretConfigs()
	return len(certs) == 1 && certs[0].GetName() != xdsmeta.SecretDefault &&
		common.GetValidationContextType() == nil && !ctx.GetRequireClientCertificate().GetValue()
}
