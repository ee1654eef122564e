package v1alpha1

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"strings"
	"time"
)

// RequestAuthKind is the RequestAuth resource: how the end users calling one
// service prove who they are, with JSON Web Tokens. A RequestAuth is named
// after the service it protects, as a DestinationPolicy is, so a service
// has at most one and there is nothing to merge.
//
// A request that carries a token must carry a valid one, from one of the
// issuers, or it is refused (401); a request without a token is let through
// unless a rule requires one. AccessPolicies of the service may then decide
// on the token's claims.
var RequestAuthKind = Kind{
	Name:       "RequestAuth",
	Plural:     "requestauths",
	Aliases:    []string{"ra"},
	Namespaced: true,
	NewSpec:    func() Spec { return new(RequestAuthSpec) },
}

func init() { Register(RequestAuthKind) }

// Bounds and defaults of a RequestAuth.
const (
	maxIssuers               = 16
	maxIssuerLength          = 512
	maxAudiences             = 32
	maxAudienceLength        = 512
	maxRequestAuthRules      = 64
	maxJWKSLength            = 1 << 20
	maxJWKSCALength          = 1 << 20
	defaultJWKSCacheDuration = 10 * time.Minute
	minJWKSCacheDuration     = time.Second
	maxJWKSCacheDuration     = 24 * time.Hour
	minJWKSTimeout           = 100 * time.Millisecond
	maxJWKSTimeout           = time.Minute
)

// DefaultJWKSTimeout is how long a proxy waits for an issuer's key set
// when the issuer does not say.
const DefaultJWKSTimeout = 5 * time.Second

// RequestAuthSpec says which tokens a service accepts and which of its
// requests must carry one.
type RequestAuthSpec struct {
	// Issuers are the token issuers the service trusts: at least one, each
	// issuer at most once.
	Issuers []JWTIssuer `json:"issuers"`
	// Rules say which requests must carry a token. They are tried in
	// order and the first that matches a request decides; a request that
	// no rule matches needs no token (but a token it carries is checked).
	Rules []RequestAuthRule `json:"rules,omitempty"`
}

// JWTIssuer is one issuer of tokens: what its tokens must say and where its
// signing keys are. Exactly one of JWKS and JWKSURI is set.
type JWTIssuer struct {
	// Issuer must equal the token's iss claim, such as
	// https://auth.example.com.
	Issuer string `json:"issuer"`
	// Audiences, if set, must hold one of the token's aud values. Unset,
	// any audience is accepted.
	Audiences []string `json:"audiences,omitempty"`
	// JWKS is the issuer's public keys as a JSON Web Key Set, inline.
	JWKS string `json:"jwks,omitempty"`
	// JWKSURI is the https URL the proxies fetch the issuer's key set
	// from. They keep the keys for JWKSCacheDuration, fetch again early
	// when a token names a key they do not know, and keep the last keys
	// they fetched while the URL fails.
	JWKSURI string `json:"jwksUri,omitempty"`
	// JWKSCA holds the PEM certificates of the roots that the JWKSURI
	// server's certificate must chain to. Unset, the system's roots.
	JWKSCA string `json:"jwksCA,omitempty"`
	// JWKSCacheDuration is how long fetched keys are used before they are
	// fetched again: from 1s to 24h, default 10m.
	JWKSCacheDuration *Duration `json:"jwksCacheDuration,omitempty"`
	// JWKSTimeout bounds one fetch of the key set: from 100ms to 1m,
	// default 5s.
	JWKSTimeout *Duration `json:"jwksTimeout,omitempty"`
	// FromHeaders are the headers the token is read from. With neither
	// FromHeaders nor FromParams, it is read from "Authorization: Bearer
	// <token>" and from the access_token query parameter.
	FromHeaders []JWTHeader `json:"fromHeaders,omitempty"`
	// FromParams are query parameters the token is read from.
	FromParams []string `json:"fromParams,omitempty"`
	// ForwardToken, if true, passes the token on to the service; by
	// default it is removed from the request once verified.
	ForwardToken bool `json:"forwardToken,omitempty"`
}

// JWTHeader is a request header a token is read from.
type JWTHeader struct {
	// Name is the header name, in lower case, such as authorization.
	Name string `json:"name"`
	// Prefix, if set, must start the value and is removed from it, such
	// as "Bearer ".
	Prefix string `json:"prefix,omitempty"`
}

// RequestAuthRule says whether the requests it matches must carry a token.
// It matches a request on one of Paths or on one of RouteRules; with
// neither, it matches every request.
type RequestAuthRule struct {
	// Paths match a request path and every path below it, segment by
	// segment, as a Route's prefix does: /admin matches /admin and
	// /admin/users but not /administrator. "/" matches every path.
	Paths []string `json:"paths,omitempty"`
	// RouteRules name rules of the service's Route: the rule matches the
	// requests those rules match.
	RouteRules []string `json:"routeRules,omitempty"`
	// Require, if true, refuses matched requests that carry no token.
	Require bool `json:"require,omitempty"`
	// Issuers, if set, narrow the issuers whose tokens the matched requests
	// may carry to these (each one of spec.issuers[].issuer).
	Issuers []string `json:"issuers,omitempty"`
}

// Default fills in each remote key set's cache duration and timeout.
func (s *RequestAuthSpec) Default() {
	for i := range s.Issuers {
		is := &s.Issuers[i]
		if is.JWKSURI == "" {
			continue
		}
		if is.JWKSCacheDuration == nil {
			is.JWKSCacheDuration = &Duration{Duration: defaultJWKSCacheDuration}
		}
		if is.JWKSTimeout == nil {
			is.JWKSTimeout = &Duration{Duration: DefaultJWKSTimeout}
		}
	}
}

// Validate checks a defaulted RequestAuthSpec.
func (s *RequestAuthSpec) Validate(path *Path) ErrorList {
	var errs ErrorList
	issuers := path.Child("issuers")
	switch {
	case len(s.Issuers) == 0:
		errs = append(errs, Invalid(issuers, "at least one issuer is required"))
	case len(s.Issuers) > maxIssuers:
		errs = append(errs, Invalid(issuers, "has %d issuers: at most %d are allowed", len(s.Issuers), maxIssuers))
	}
	known := make(map[string]int, len(s.Issuers))
	for i := range s.Issuers {
		is, at := &s.Issuers[i], issuers.Index(i)
		errs = append(errs, is.validate(at)...)
		if is.Issuer == "" {
			continue
		}
		if first, dup := known[is.Issuer]; dup {
			errs = append(errs, Invalid(at.Child("issuer"), "duplicate issuer %s: %s has it too", quote(is.Issuer), issuers.Index(first)))
		} else {
			known[is.Issuer] = i
		}
	}
	rules := path.Child("rules")
	if len(s.Rules) > maxRequestAuthRules {
		errs = append(errs, Invalid(rules, "has %d rules: at most %d are allowed", len(s.Rules), maxRequestAuthRules))
	}
	catchAll := -1
	for i := range s.Rules {
		r, at := &s.Rules[i], rules.Index(i)
		if catchAll >= 0 {
			errs = append(errs, Invalid(at, "is shadowed by %s, which matches every request: put the rule without paths and routeRules last", rules.Index(catchAll)))
		} else if r.matchesAll() {
			catchAll = i
		}
		errs = append(errs, r.validate(at, known)...)
	}
	return errs
}

func (is *JWTIssuer) validate(path *Path) ErrorList {
	var errs ErrorList
	switch at := path.Child("issuer"); {
	case is.Issuer == "":
		errs = append(errs, Required(at))
	case len(is.Issuer) > maxIssuerLength:
		errs = append(errs, Invalid(at, "is %d characters long: at most %d are allowed", len(is.Issuer), maxIssuerLength))
	case hasControl(is.Issuer):
		errs = append(errs, Invalid(at, "must not hold spaces or control characters"))
	}
	aud := path.Child("audiences")
	if len(is.Audiences) > maxAudiences {
		errs = append(errs, Invalid(aud, "has %d audiences: at most %d are allowed", len(is.Audiences), maxAudiences))
	}
	for i, a := range is.Audiences {
		switch {
		case a == "":
			errs = append(errs, Invalid(aud.Index(i), "must not be empty"))
		case len(a) > maxAudienceLength:
			errs = append(errs, Invalid(aud.Index(i), "is %d characters long: at most %d are allowed", len(a), maxAudienceLength))
		case hasControl(a):
			errs = append(errs, Invalid(aud.Index(i), "must not hold spaces or control characters"))
		}
	}

	remote := is.JWKSURI != ""
	if set := setFields(field{"jwks", is.JWKS != ""}, field{"jwksUri", remote}); len(set) != 1 {
		errs = append(errs, exactlyOne(path, set, "jwks or jwksUri"))
	}
	if is.JWKS != "" {
		errs = append(errs, validateJWKS(path.Child("jwks"), is.JWKS)...)
	}
	if remote {
		errs = append(errs, validateJWKSURI(path.Child("jwksUri"), is.JWKSURI)...)
		if is.JWKSCacheDuration != nil {
			errs = append(errs, durationBetween(path.Child("jwksCacheDuration"), is.JWKSCacheDuration.Duration, minJWKSCacheDuration, maxJWKSCacheDuration)...)
		}
		if is.JWKSTimeout != nil {
			errs = append(errs, durationBetween(path.Child("jwksTimeout"), is.JWKSTimeout.Duration, minJWKSTimeout, maxJWKSTimeout)...)
		}
	} else {
		for _, f := range []field{
			{"jwksCA", is.JWKSCA != ""},
			{"jwksCacheDuration", is.JWKSCacheDuration != nil},
			{"jwksTimeout", is.JWKSTimeout != nil},
		} {
			if f.set {
				errs = append(errs, Invalid(path.Child(f.name), "applies only to keys fetched from jwksUri"))
			}
		}
	}
	if is.JWKSCA != "" {
		errs = append(errs, validateCA(path.Child("jwksCA"), is.JWKSCA)...)
	}

	headers := path.Child("fromHeaders")
	for i, h := range is.FromHeaders {
		at := headers.Index(i)
		errs = append(errs, validateHeaderName(at.Child("name"), h.Name)...)
		errs = append(errs, validateHeaderValue(at.Child("prefix"), h.Prefix)...)
	}
	for i, p := range is.FromParams {
		if !isQueryParamName(p) {
			errs = append(errs, Invalid(path.Child("fromParams").Index(i), "%s is not a valid query parameter name: use at most 256 characters other than spaces, control characters, '&', '=' and '#'", quote(p)))
		}
	}
	return errs
}

// validateJWKS checks that an inline key set is a JSON Web Key Set with a
// key the proxies can verify with: RSA (RS256, at least 2048 bits) or EC
// P-256 (ES256). The proxies parse each key in full, and NACK a set whose
// usable keys are malformed.
func validateJWKS(path *Path, s string) ErrorList {
	if len(s) > maxJWKSLength {
		return ErrorList{Invalid(path, "is %d bytes long: at most %d are allowed", len(s), maxJWKSLength)}
	}
	var set struct {
		Keys []struct {
			Kty, Use, Alg, Crv, N, E, X, Y string
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(s), &set); err != nil {
		return ErrorList{Invalid(path, "is not a JSON Web Key Set: %v", err)}
	}
	if len(set.Keys) == 0 {
		return ErrorList{Invalid(path, `holds no keys: a JSON Web Key Set is {"keys": [...]}`)}
	}
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch {
		case k.Kty == "RSA" && (k.Alg == "" || k.Alg == "RS256"):
			n, err := base64.RawURLEncoding.DecodeString(k.N)
			if err == nil && len(n) >= 256 && k.E != "" {
				return nil
			}
		case k.Kty == "EC" && k.Crv == "P-256" && (k.Alg == "" || k.Alg == "ES256"):
			x, errX := base64.RawURLEncoding.DecodeString(k.X)
			y, errY := base64.RawURLEncoding.DecodeString(k.Y)
			if errX == nil && errY == nil && len(x) == 32 && len(y) == 32 {
				return nil
			}
		}
	}
	return ErrorList{Invalid(path, "holds no RS256 (RSA of at least 2048 bits) or ES256 (EC P-256) signing key")}
}

// validateJWKSURI checks a key set URL: https, with a host, and nothing the
// fetch would not send.
func validateJWKSURI(path *Path, s string) ErrorList {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return ErrorList{Invalid(path, "%s is not a URL", quote(s))}
	case u.Scheme != "https":
		return ErrorList{Invalid(path, "%s must be an https URL: keys fetched in the clear could be forged", quote(s))}
	case u.Host == "" || u.Hostname() == "":
		return ErrorList{Invalid(path, "%s has no host", quote(s))}
	case u.User != nil:
		return ErrorList{Invalid(path, "%s must not hold credentials", quote(s))}
	case u.Fragment != "" || strings.Contains(s, "#"):
		return ErrorList{Invalid(path, "%s must not hold a fragment", quote(s))}
	case hasControl(s):
		return ErrorList{Invalid(path, "must not hold spaces or control characters")}
	}
	return nil
}

// validateCA checks that s holds PEM certificates and nothing else.
func validateCA(path *Path, s string) ErrorList {
	if len(s) > maxJWKSCALength {
		return ErrorList{Invalid(path, "is %d bytes long: at most %d are allowed", len(s), maxJWKSCALength)}
	}
	n := 0
	for rest := []byte(s); ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(strings.TrimSpace(string(rest))) > 0 {
				return ErrorList{Invalid(path, "holds something other than PEM certificates")}
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return ErrorList{Invalid(path, "holds a PEM %s block: only CERTIFICATE blocks are allowed", quote(block.Type))}
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return ErrorList{Invalid(path, "certificate %d does not parse: %v", n, err)}
		}
		n++
	}
	if n == 0 {
		return ErrorList{Invalid(path, "holds no PEM certificate")}
	}
	return nil
}

func (r *RequestAuthRule) matchesAll() bool { return len(r.Paths) == 0 && len(r.RouteRules) == 0 }

func (r *RequestAuthRule) validate(path *Path, issuers map[string]int) ErrorList {
	var errs ErrorList
	for i, p := range r.Paths {
		at := path.Child("paths").Index(i)
		if e := validatePathValue(at, p); e != nil {
			errs = append(errs, e...)
			continue
		}
		if len(p) > 1 && strings.HasSuffix(p, "/") {
			errs = append(errs, Invalid(at, "%s must not end with '/': %s already matches every path below it", quote(p), quote(strings.TrimRight(p, "/"))))
		}
	}
	for i, name := range r.RouteRules {
		if !isDNSLabel(name) {
			errs = append(errs, Invalid(path.Child("routeRules").Index(i), "%s is not a valid rule name: use %s", quote(name), dnsLabelRule))
		}
	}
	for i, iss := range r.Issuers {
		if _, ok := issuers[iss]; !ok {
			errs = append(errs, Invalid(path.Child("issuers").Index(i), "%s is not one of spec.issuers[].issuer", quote(iss)))
		}
	}
	return errs
}

// hasControl reports whether s holds a space or a control character.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
}
