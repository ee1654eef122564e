package v1alpha1

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// DefaultTracingSampling is the share of new traces recorded when Tracing
// does not say, as in Istio: enough to see the mesh, cheap enough to leave on.
const DefaultTracingSampling = 1.0

// Tracing configures distributed tracing in every proxy of the mesh: each
// records a span per request it handles (SERVER inbound, CLIENT outbound),
// propagates W3C Trace Context and B3 headers, and exports over OTLP.
type Tracing struct {
	// Sampling is the percentage of traces started in the mesh that are
	// recorded: a number from 0 to 100 or a string such as "1%" or "0.5%";
	// default 1%. A caller's own decision (the sampled flag) always wins.
	Sampling *Percent `json:"sampling,omitempty"`
	// OTLP is the collector spans are sent to.
	OTLP *OTLP `json:"otlp,omitempty"`
}

// OTLP names an OpenTelemetry collector.
type OTLP struct {
	// Endpoint is host:port, or a URL (http://host:port, https://host:port;
	// with the http protocol its path, default /v1/traces, is where spans
	// are posted). The host must be an IP address for now.
	Endpoint string `json:"endpoint,omitempty"`
	// Protocol is grpc (the default) or http (protobuf bodies).
	Protocol OTLPProtocol `json:"protocol,omitempty"`
	// Insecure sends spans in plaintext.
	Insecure bool `json:"insecure,omitempty"`
	// CA is the PEM of the authority that signed the collector's
	// certificate; required unless insecure.
	CA string `json:"ca,omitempty"`
}

// OTLPProtocol is how spans travel to the collector.
type OTLPProtocol string

// OTLP protocols.
const (
	OTLPGRPC OTLPProtocol = "grpc"
	OTLPHTTP OTLPProtocol = "http"
)

var otlpProtocols = []OTLPProtocol{OTLPGRPC, OTLPHTTP}

// DefaultOTLPHTTPPath is where the OTLP/HTTP collector takes traces.
const DefaultOTLPHTTPPath = "/v1/traces"

// Percent is a percentage written as a number (1, 0.5) or a string ("1%").
type Percent float64

// UnmarshalJSON reads a number or a string with or without "%".
func (p *Percent) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err == nil {
		*p = Percent(f)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("percentage must be a number or a string such as \"1%%\"")
	}
	return p.UnmarshalText([]byte(s))
}

// UnmarshalText reads "1%", "0.5%" or a bare number.
func (p *Percent) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil {
		return fmt.Errorf("invalid percentage %s (want for example \"1%%\" or 0.5)", quote(s))
	}
	*p = Percent(f)
	return nil
}

// MarshalText writes the percentage with its "%".
func (p Percent) MarshalText() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(p), 'g', -1, 64) + "%"), nil
}

// MarshalJSON writes the percentage as a string, "1%".
func (p Percent) MarshalJSON() ([]byte, error) {
	b, _ := p.MarshalText()
	return json.Marshal(string(b))
}

// OTLPTarget is a parsed OTLP endpoint.
type OTLPTarget struct {
	// Addr is the collector's IP address and port.
	Addr netip.AddrPort
	// Host is the endpoint's host as written, for SNI and the Host header.
	Host string
	// Path is the OTLP/HTTP path ("" for gRPC).
	Path string
	// TLS says the collector is reached over TLS.
	TLS bool
}

// URL is where OTLP/HTTP spans are posted.
func (t OTLPTarget) URL() string {
	scheme := "http"
	if t.TLS {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(t.Host, strconv.Itoa(int(t.Addr.Port()))) + t.Path
}

// Target parses a defaulted, valid OTLP's endpoint.
func (o *OTLP) Target() (OTLPTarget, error) {
	t := OTLPTarget{TLS: !o.Insecure}
	hostport := o.Endpoint
	if strings.Contains(hostport, "://") {
		u, err := url.Parse(o.Endpoint)
		if err != nil {
			return t, fmt.Errorf("%s is not a valid URL", quote(o.Endpoint))
		}
		switch u.Scheme {
		case "http":
			if !o.Insecure {
				return t, fmt.Errorf("an http:// endpoint is plaintext: set insecure: true, or use https://")
			}
		case "https":
			if o.Insecure {
				return t, fmt.Errorf("an https:// endpoint is not insecure: use http://, or unset insecure")
			}
		default:
			return t, fmt.Errorf("scheme %s is not supported (want http or https)", quote(u.Scheme))
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return t, fmt.Errorf("%s must not hold user info, a query or a fragment", quote(o.Endpoint))
		}
		if u.Path != "" && u.Path != "/" {
			if o.Protocol != OTLPHTTP {
				return t, fmt.Errorf("a path is meaningful only with protocol http")
			}
			t.Path = u.Path
		}
		hostport = u.Host
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return t, fmt.Errorf("%s is not host:port or a URL with a port", quote(o.Endpoint))
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return t, fmt.Errorf("host %s must be an IP address (the proxies do not resolve collector names yet)", quote(host))
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return t, fmt.Errorf("port %s is not a valid port", quote(port))
	}
	t.Addr, t.Host = netip.AddrPortFrom(ip.Unmap(), uint16(p)), host
	if o.Protocol == OTLPHTTP && t.Path == "" {
		t.Path = DefaultOTLPHTTPPath
	}
	return t, nil
}

// SamplingPercent is the defaulted sampling rate.
func (t *Tracing) SamplingPercent() float64 {
	if t.Sampling == nil {
		return DefaultTracingSampling
	}
	return float64(*t.Sampling)
}

// Default sets the protocol to grpc and the sampling to 1% when unset.
func (t *Tracing) Default() {
	if t.Sampling == nil {
		s := Percent(DefaultTracingSampling)
		t.Sampling = &s
	}
	if t.OTLP != nil && t.OTLP.Protocol == "" {
		t.OTLP.Protocol = OTLPGRPC
	}
}

// Validate checks a defaulted Tracing.
func (t *Tracing) Validate(path *Path) ErrorList {
	var errs ErrorList
	if t.Sampling != nil {
		if s := float64(*t.Sampling); !(s >= 0 && s <= 100) {
			errs = append(errs, Invalid(path.Child("sampling"), "must be between 0 and 100 (percent), got %g", s))
		}
	}
	o := t.OTLP
	opath := path.Child("otlp")
	if o == nil {
		return append(errs, Required(opath))
	}
	if !slices.Contains(otlpProtocols, o.Protocol) {
		errs = append(errs, NotSupported(opath.Child("protocol"), o.Protocol, otlpProtocols))
	}
	if o.Endpoint == "" {
		errs = append(errs, Required(opath.Child("endpoint")))
	} else if _, err := o.Target(); err != nil {
		errs = append(errs, Invalid(opath.Child("endpoint"), "%s", err))
	}
	switch {
	case o.Insecure && o.CA != "":
		errs = append(errs, Invalid(opath.Child("ca"), "must be empty when insecure is true"))
	case !o.Insecure && o.CA == "":
		errs = append(errs, Invalid(opath.Child("ca"), "is required (the PEM of the collector's CA) unless insecure is true"))
	case o.CA != "":
		if err := checkCAPEM(o.CA); err != nil {
			errs = append(errs, Invalid(opath.Child("ca"), "%s", err))
		}
	}
	return errs
}

func checkCAPEM(s string) error {
	rest := []byte(s)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %s block: only CERTIFICATE blocks are allowed", b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("holds no PEM certificate")
	}
	return nil
}
