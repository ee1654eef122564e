package jwt

import (
	"net/http"
	"strconv"

	"github.com/weftmesh/weft/proxy/filter"
)

// failure is why a request's token was refused. The reply for each is
// built once: refusing allocates nothing.
type failure struct {
	// reason is the short code in x-weft-error and the proxy's log.
	reason string
	// detail is Envoy's message for the same failure, sent as the body
	// and in www-authenticate's error_description.
	detail string
	// rank orders failures when several providers fail one request: the
	// one that says most about the token is reported.
	rank  int
	reply *filter.Reply
}

func newFailure(reason, detail string, rank int) *failure {
	f := &failure{reason: reason, detail: detail, rank: rank}
	challenge := `Bearer error="invalid_token", error_description=` + strconv.Quote(detail)
	if reason == "jwt_missing" {
		// RFC 6750 section 3.1: a request without credentials gets no
		// error code and no other error information (x-weft-error and the
		// body still say why).
		challenge = "Bearer"
	}
	f.reply = &filter.Reply{
		Status: http.StatusUnauthorized,
		Body:   detail,
		Reason: reason,
		Header: http.Header{"Www-Authenticate": {challenge}},
	}
	return f
}

func (f *failure) Error() string { return f.detail }

// The failures, in Envoy's words. A missing token says least, a token for
// another issuer little more: with several providers on one header, each
// that is not the token's issuer reports it.
var (
	errMissing        = newFailure("jwt_missing", "Jwt is missing", 0)
	errWrongIssuer    = newFailure("jwt_wrong_issuer", "Jwt issuer is not configured", 1)
	errMalformed      = newFailure("jwt_malformed", "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections", 2)
	errUnsupportedAlg = newFailure("jwt_unsupported_alg", "Jwt header [alg] field is required and must be RS256 or ES256", 2)
	errJWKSFetch      = newFailure("jwt_jwks_unavailable", "Jwks remote fetch is failed", 2)
	errUnknownKey     = newFailure("jwt_unknown_key", "Jwks doesn't have key to match kid or alg from Jwt", 3)
	errBadSignature   = newFailure("jwt_invalid_signature", "Jwt verification fails", 3)
	errExpired        = newFailure("jwt_expired", "Jwt is expired", 4)
	errNotYetValid    = newFailure("jwt_not_yet_valid", "Jwt not yet valid", 4)
	errWrongAudience  = newFailure("jwt_wrong_audience", "Audiences in Jwt are not allowed", 4)
)

// worse returns whichever of a and b says more; nil says nothing.
func worse(a, b *failure) *failure {
	if a == nil || (b != nil && b.rank > a.rank) {
		return b
	}
	return a
}
