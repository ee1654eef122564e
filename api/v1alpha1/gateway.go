package v1alpha1

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// GatewayKind is the Gateway resource: the ports, hosts and TLS
// certificates an ingress gateway proxy serves to clients outside the mesh.
// Routes attach to it by name (RouteSpec.Gateways) and say where the
// requests for its hosts go.
var GatewayKind = Kind{
	Name:       "Gateway",
	Plural:     "gateways",
	Aliases:    []string{"gw"},
	Namespaced: true,
	NewSpec:    func() Spec { return new(GatewaySpec) },
}

func init() {
	Register(GatewayKind)
}

// Bounds of a Gateway.
const (
	maxGatewayListeners    = 64
	maxGatewayHosts        = 256
	maxGatewayCertificates = 64
	maxPEMLength           = 64 << 10
)

// GatewayProtocol is what a Gateway listener speaks to its clients.
type GatewayProtocol string

// The protocols of a Gateway listener.
const (
	GatewayHTTP  GatewayProtocol = "HTTP"
	GatewayHTTPS GatewayProtocol = "HTTPS"
)

var gatewayProtocols = []GatewayProtocol{GatewayHTTP, GatewayHTTPS}

// GatewaySpec describes an ingress gateway. The proxies that serve it are
// those of the service named in Service, in the Gateway's namespace, run
// with `weft proxy --mode ingress`.
type GatewaySpec struct {
	// Service is the gateway proxies' own service name (the one their join
	// token is for), such as ingress.
	Service string `json:"service"`
	// Listeners are the ports the gateway opens, each on its own port.
	Listeners []GatewayListener `json:"listeners"`
}

// GatewayListener is one port of a Gateway.
type GatewayListener struct {
	// Name names the listener in status and xDS: a DNS label, unique in the
	// Gateway.
	Name string `json:"name"`
	// Port is the TCP port the gateway listens on, 1-65535.
	Port int `json:"port"`
	// Protocol is HTTP or HTTPS.
	Protocol GatewayProtocol `json:"protocol"`
	// Hosts are the host names the listener serves: exact names such as
	// shop.example.com, wildcards such as *.example.com (one or more labels
	// in front of example.com), or "*" for every host. Default ["*"] for
	// HTTP; HTTPS requires names, each served by one of its certificates.
	Hosts []string `json:"hosts,omitempty"`
	// TLS is required for HTTPS and not allowed for HTTP.
	TLS *GatewayTLS `json:"tls,omitempty"`
	// HTTPSRedirect, on an HTTP listener, answers every request with a 301
	// to the same URL on https (port 443 unless HTTPSPort is set).
	HTTPSRedirect bool `json:"httpsRedirect,omitempty"`
	// HTTPSPort is the port the redirect points at; unset, the https URL
	// names no port.
	HTTPSPort int `json:"httpsPort,omitempty"`
}

// GatewayTLS terminates TLS on an HTTPS listener. Clients are not asked for
// a certificate: the gateway serves the world outside the mesh.
type GatewayTLS struct {
	// Certificates are chosen by the SNI the client sends: the first whose
	// hosts match it, exact names before wildcards.
	Certificates []GatewayCertificate `json:"certificates"`
}

// GatewayCertificate is one certificate and its private key, PEM, inline.
// Re-applying the Gateway with a new pair rotates it: the control plane
// sends it to the gateway proxies as an xDS secret, and new handshakes use
// it at once.
type GatewayCertificate struct {
	// Hosts are the SNI names this certificate serves, each one of the
	// listener's hosts. Unset, it serves every host of the listener.
	Hosts []string `json:"hosts,omitempty"`
	// CertificatePEM is the leaf certificate, then any intermediates.
	CertificatePEM string `json:"certificatePEM"`
	// PrivateKeyPEM is the certificate's private key. The API never returns
	// it: reads show a marker, `<redacted: 1 private key, sha256:…>`, and
	// an apply that carries the marker keeps the stored key it names.
	PrivateKeyPEM string `json:"privateKeyPEM"`
}

// Default fills in the hosts of HTTP listeners.
func (s *GatewaySpec) Default() {
	for i := range s.Listeners {
		l := &s.Listeners[i]
		if len(l.Hosts) == 0 && l.Protocol == GatewayHTTP {
			l.Hosts = []string{"*"}
		}
	}
}

// Validate checks a defaulted GatewaySpec.
func (s *GatewaySpec) Validate(path *Path) ErrorList {
	errs := validateServiceName(path.Child("service"), s.Service)
	lp := path.Child("listeners")
	switch {
	case len(s.Listeners) == 0:
		return append(errs, Invalid(lp, "at least one listener is required"))
	case len(s.Listeners) > maxGatewayListeners:
		return append(errs, Invalid(lp, "at most %d listeners are allowed, got %d", maxGatewayListeners, len(s.Listeners)))
	}
	names := map[string]int{}
	ports := map[int]int{}
	for i := range s.Listeners {
		l := &s.Listeners[i]
		at := lp.Index(i)
		if first, dup := names[l.Name]; dup && l.Name != "" {
			errs = append(errs, Invalid(at.Child("name"), "duplicate listener name %s: %s has it too", quote(l.Name), lp.Index(first)))
		} else {
			names[l.Name] = i
		}
		if first, dup := ports[l.Port]; dup && l.Port != 0 {
			errs = append(errs, Invalid(at.Child("port"), "port %d is taken by %s: each listener needs its own port", l.Port, lp.Index(first)))
		} else {
			ports[l.Port] = i
		}
		errs = append(errs, l.validate(at)...)
	}
	return errs
}

func (l *GatewayListener) validate(path *Path) ErrorList {
	var errs ErrorList
	if !isDNSLabel(l.Name) {
		if l.Name == "" {
			errs = append(errs, Required(path.Child("name")))
		} else {
			errs = append(errs, Invalid(path.Child("name"), "%s is not a valid listener name: use %s", quote(l.Name), dnsLabelRule))
		}
	}
	if l.Port < 1 || l.Port > 65535 {
		errs = append(errs, Invalid(path.Child("port"), "must be between 1 and 65535, got %d", l.Port))
	}
	if !slices.Contains(gatewayProtocols, l.Protocol) {
		errs = append(errs, NotSupported(path.Child("protocol"), l.Protocol, gatewayProtocols))
	}
	hp := path.Child("hosts")
	switch {
	case len(l.Hosts) == 0:
		errs = append(errs, Invalid(hp, "at least one host is required"))
	case len(l.Hosts) > maxGatewayHosts:
		errs = append(errs, Invalid(hp, "at most %d hosts are allowed, got %d", maxGatewayHosts, len(l.Hosts)))
	default:
		errs = append(errs, validateHostList(hp, l.Hosts)...)
	}
	if l.HTTPSPort != 0 && (l.HTTPSPort < 1 || l.HTTPSPort > 65535) {
		errs = append(errs, Invalid(path.Child("httpsPort"), "must be between 1 and 65535, got %d", l.HTTPSPort))
	}
	switch l.Protocol {
	case GatewayHTTP:
		if l.TLS != nil {
			errs = append(errs, Invalid(path.Child("tls"), "is only allowed on an HTTPS listener"))
		}
		if l.HTTPSPort != 0 && !l.HTTPSRedirect {
			errs = append(errs, Invalid(path.Child("httpsPort"), "is only used with httpsRedirect: true"))
		}
	case GatewayHTTPS:
		if l.HTTPSRedirect {
			errs = append(errs, Invalid(path.Child("httpsRedirect"), "is only allowed on an HTTP listener"))
		}
		if l.HTTPSPort != 0 {
			errs = append(errs, Invalid(path.Child("httpsPort"), "is only allowed on an HTTP listener"))
		}
		if l.TLS == nil {
			errs = append(errs, Invalid(path.Child("tls"), "is required on an HTTPS listener"))
		} else {
			errs = append(errs, l.TLS.validate(path.Child("tls"), l.Hosts)...)
		}
	}
	return errs
}

func (t *GatewayTLS) validate(path *Path, listenerHosts []string) ErrorList {
	var errs ErrorList
	cp := path.Child("certificates")
	switch {
	case len(t.Certificates) == 0:
		return ErrorList{Invalid(cp, "at least one certificate is required")}
	case len(t.Certificates) > maxGatewayCertificates:
		return ErrorList{Invalid(cp, "at most %d certificates are allowed, got %d", maxGatewayCertificates, len(t.Certificates))}
	}
	servedBy := map[string]int{} // SNI host -> certificate index
	for i := range t.Certificates {
		c := &t.Certificates[i]
		at := cp.Index(i)
		hosts := c.Hosts
		if len(hosts) == 0 {
			if len(t.Certificates) > 1 {
				errs = append(errs, Invalid(at.Child("hosts"), "is required when a listener has several certificates: say which SNI names this one serves"))
			}
			hosts = listenerHosts
		} else {
			errs = append(errs, validateHostList(at.Child("hosts"), c.Hosts)...)
			for j, h := range c.Hosts {
				if !slices.Contains(listenerHosts, h) {
					errs = append(errs, Invalid(at.Child("hosts").Index(j), "%s is not one of the listener's hosts", quote(h)))
				}
			}
		}
		for _, h := range hosts {
			if first, dup := servedBy[h]; dup {
				errs = append(errs, Invalid(at.Child("hosts"), "%s is served by %s already", quote(h), cp.Index(first)))
			} else {
				servedBy[h] = i
			}
		}
		errs = append(errs, c.validatePair(at)...)
	}
	if len(t.Certificates) > 1 {
		for _, h := range listenerHosts {
			if _, ok := servedBy[h]; !ok {
				errs = append(errs, Invalid(cp, "no certificate serves host %s", quote(h)))
			}
		}
	}
	return errs
}

func (c *GatewayCertificate) validatePair(path *Path) ErrorList {
	var errs ErrorList
	for _, f := range []struct {
		name, value string
	}{{"certificatePEM", c.CertificatePEM}, {"privateKeyPEM", c.PrivateKeyPEM}} {
		switch {
		case f.value == "":
			errs = append(errs, Required(path.Child(f.name)))
		case len(f.value) > maxPEMLength:
			errs = append(errs, Invalid(path.Child(f.name), "is %d bytes: at most %d are allowed", len(f.value), maxPEMLength))
		}
	}
	if errs != nil {
		return errs
	}
	if IsRedactedKey(c.PrivateKeyPEM) {
		// The marker `weft get` shows in place of a stored key: the API
		// server puts that key back (RestoreKeys) and validates again.
		return nil
	}
	if _, err := tls.X509KeyPair([]byte(c.CertificatePEM), []byte(c.PrivateKeyPEM)); err != nil {
		// The error names what is wrong (no PEM block, key mismatch) but
		// never echoes the key.
		return ErrorList{Invalid(path, "certificatePEM and privateKeyPEM are not a usable pair: %v", err)}
	}
	return nil
}

// validateHostList checks gateway host names: each valid, none repeated.
func validateHostList(path *Path, hosts []string) ErrorList {
	var errs ErrorList
	seen := map[string]int{}
	for i, h := range hosts {
		if first, dup := seen[h]; dup {
			errs = append(errs, Invalid(path.Index(i), "duplicate host %s: %s has it too", quote(h), path.Index(first)))
			continue
		}
		seen[h] = i
		if !IsGatewayHost(h) {
			errs = append(errs, Invalid(path.Index(i), "%s is not a valid host: use a lower-case DNS name such as shop.example.com, a wildcard such as *.example.com, or *", quote(h)))
		}
	}
	return errs
}

// IsGatewayHost reports whether h is a host a Gateway or a gateway Route
// may name: a DNS name, "*." and a DNS name, or "*".
func IsGatewayHost(h string) bool {
	if h == "*" {
		return true
	}
	return isDNSName(strings.TrimPrefix(h, "*."), maxSubdomainLength)
}

// GatewayHostMatches reports whether the gateway host pattern serves the
// request host name (both lower case, without port): "*" every host,
// "*.example.com" any name ending in ".example.com", other patterns only
// themselves.
func GatewayHostMatches(pattern, host string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:]) && len(host) > len(pattern)-1
	}
	return pattern == host
}

// Private keys never leave the API server: reads show a marker in their place
// (RedactKeys), and an apply that carries the marker back keeps the stored
// key it stands for (RestoreKeys), so a file from `weft get -o yaml` can be
// edited and re-applied as it is.

// redactedKeyRE matches the marker RedactKey writes.
var redactedKeyRE = regexp.MustCompile(`^<redacted: [0-9]+ private keys?, sha256:([0-9a-f]{16})>$`)

// RedactKey returns the marker shown instead of a private key's PEM: how
// many keys it holds and the start of the PEM's SHA-256, so a reader sees
// that a key is there and whether it changed, and an apply can name it.
func RedactKey(keyPEM string) string {
	if keyPEM == "" || IsRedactedKey(keyPEM) {
		return keyPEM
	}
	n, rest := 0, []byte(keyPEM)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			n++
		}
	}
	noun := "private keys"
	if n == 1 {
		noun = "private key"
	}
	sum := sha256.Sum256([]byte(keyPEM))
	return fmt.Sprintf("<redacted: %d %s, sha256:%s>", n, noun, hex.EncodeToString(sum[:8]))
}

// IsRedactedKey tells whether s is a marker RedactKey wrote.
func IsRedactedKey(s string) bool { return redactedKeyRE.MatchString(strings.TrimSpace(s)) }

// redactedKeyHash is the hash a marker names.
func redactedKeyHash(s string) string {
	if m := redactedKeyRE.FindStringSubmatch(strings.TrimSpace(s)); m != nil {
		return m[1]
	}
	return ""
}

// RedactKeys replaces every private key of the Gateway with its marker.
func (s *GatewaySpec) RedactKeys() {
	for i := range s.Listeners {
		if t := s.Listeners[i].TLS; t != nil {
			for j := range t.Certificates {
				t.Certificates[j].PrivateKeyPEM = RedactKey(t.Certificates[j].PrivateKeyPEM)
			}
		}
	}
}

// HasRedactedKeys tells whether any private key of the Gateway is a marker.
func (s *GatewaySpec) HasRedactedKeys() bool {
	for _, l := range s.Listeners {
		if l.TLS != nil {
			for _, c := range l.TLS.Certificates {
				if IsRedactedKey(c.PrivateKeyPEM) {
					return true
				}
			}
		}
	}
	return false
}

// RestoreKeys puts back, for every marker in s, the key of stored (the
// Gateway as it is stored, nil if there is none) that the marker names, on
// whatever listener or certificate it is. A marker that names no stored key
// is an error at its field: the key it stood for is gone (rotated, or the
// file came from another Gateway), so only the PEM itself can say which key
// to serve. path is the spec's path.
func (s *GatewaySpec) RestoreKeys(path *Path, ref string, stored *GatewaySpec) ErrorList {
	keys := map[string]string{}
	if stored != nil {
		for _, l := range stored.Listeners {
			if l.TLS != nil {
				for _, c := range l.TLS.Certificates {
					if c.PrivateKeyPEM != "" && !IsRedactedKey(c.PrivateKeyPEM) {
						keys[redactedKeyHash(RedactKey(c.PrivateKeyPEM))] = c.PrivateKeyPEM
					}
				}
			}
		}
	}
	var errs ErrorList
	for i := range s.Listeners {
		t := s.Listeners[i].TLS
		if t == nil {
			continue
		}
		for j := range t.Certificates {
			c := &t.Certificates[j]
			if !IsRedactedKey(c.PrivateKeyPEM) {
				continue
			}
			at := path.Child("listeners").Index(i).Child("tls").Child("certificates").Index(j).Child("privateKeyPEM")
			hash := redactedKeyHash(c.PrivateKeyPEM)
			key, ok := keys[hash]
			switch {
			case ok:
				c.PrivateKeyPEM = key
			case stored == nil:
				errs = append(errs, Invalid(at, "is the marker `weft get` shows in place of a private key, and %s is not stored yet: put the PEM private key here", ref))
			default:
				errs = append(errs, Invalid(at, "is the marker of a private key (sha256:%s) that %s no longer holds: put the PEM private key here", hash, ref))
			}
		}
	}
	return errs
}
