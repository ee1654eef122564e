package identity

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/controlplane/token"
)

// How a caller authenticated: the values of the "auth" label and log field.
const (
	authJoinToken = "join_token"
	authSVID      = "svid"
)

// caller is who a request proved to be, and how.
type caller struct {
	id     spiffe.ID
	method string // authJoinToken or authSVID
	// credential names what proved it, for the audit log: the join token's ID
	// or the client certificate's serial number. Never a secret.
	credential string
	// refusal, when authentication failed, says why in a word for the log:
	// expired, revoked, bad_signature, malformed, bad_svid.
	refusal string
}

func (c caller) String() string {
	if c.method == authJoinToken {
		return fmt.Sprintf("join token for %s/%s", c.id.Namespace, c.id.Service)
	}
	return "SVID " + c.id.String()
}

// authenticate finds out who is calling. A client certificate that the TLS
// handshake verified wins; a join token in the "authorization" metadata is
// the fallback, so that a proxy whose SVID has lapsed can start over.
func (s *Service) authenticate(ctx context.Context) (caller, error) {
	var svidErr error
	if chains := verifiedChains(ctx); len(chains) > 0 {
		who, err := s.fromSVID(chains, time.Now())
		if err == nil {
			return who, nil
		}
		svidErr = err
	}

	tok, err := bearerToken(ctx)
	if err != nil {
		return caller{}, status.Errorf(codes.Unauthenticated, "identity: %v", err)
	}
	if tok == "" {
		if svidErr != nil {
			return caller{method: authSVID, refusal: "bad_svid"}, status.Errorf(codes.Unauthenticated, "identity: %v", svidErr)
		}
		return caller{}, status.Error(codes.Unauthenticated,
			`identity: no credentials: send a join token as "authorization: Bearer <token>" or present an SVID as the TLS client certificate`)
	}
	if s.tokens == nil {
		return caller{}, status.Error(codes.Unauthenticated, "identity: this control plane does not accept join tokens")
	}
	claims, err := s.tokens.Verify(ctx, tok)
	switch {
	case errors.Is(err, token.ErrInvalid):
		return caller{method: authJoinToken, refusal: tokenRefusal(err)}, status.Errorf(codes.Unauthenticated, "identity: %v", err)
	case ctx.Err() != nil:
		return caller{}, status.FromContextError(ctx.Err()).Err()
	case err != nil:
		return caller{}, status.Errorf(codes.Unavailable, "identity: cannot check the join token: %v", err)
	}
	return caller{
		id:         spiffe.ID{TrustDomain: s.ca.TrustDomain(), Namespace: claims.Namespace, Service: claims.Service},
		method:     authJoinToken,
		credential: claims.ID,
	}, nil
}

// fromSVID reads the caller's identity from a client certificate that TLS
// has verified. It checks again what the server's TLS configuration might
// have let through: a chain that ends at a root of another CA, a certificate
// of another trust domain, or one that expired while the connection stayed
// open.
func (s *Service) fromSVID(chains [][]*x509.Certificate, now time.Time) (caller, error) {
	leaf := chains[0][0]
	if !s.anchored(chains) {
		return caller{}, errors.New("client certificate was not issued by the mesh CA")
	}
	id, err := spiffe.FromCert(leaf)
	if err != nil {
		return caller{}, fmt.Errorf("client certificate: %w", err)
	}
	if id.TrustDomain != s.ca.TrustDomain() {
		return caller{}, fmt.Errorf("client certificate %s is from trust domain %q, not %q",
			id, id.TrustDomain, s.ca.TrustDomain())
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return caller{}, fmt.Errorf("client certificate %s is valid from %s to %s, not now",
			id, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return caller{id: id, method: authSVID, credential: leaf.SerialNumber.Text(16)}, nil
}

// anchored reports whether one of the verified chains ends at a root in the
// mesh's trust bundle.
func (s *Service) anchored(chains [][]*x509.Certificate) bool {
	bundle := s.ca.TrustBundle()
	for _, chain := range chains {
		top := chain[len(chain)-1]
		for _, root := range bundle {
			if bytes.Equal(top.Raw, root) {
				return true
			}
		}
	}
	return false
}

// verifiedChains returns the chains the TLS handshake built from the client
// certificate to a trusted root; none when the caller presented no
// certificate or the connection is not TLS.
func verifiedChains(ctx context.Context) [][]*x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil
	}
	return info.State.VerifiedChains
}

// bearerToken returns the token in "authorization: Bearer <token>", or ""
// when there is no authorization metadata.
func bearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", errors.New("more than one authorization header")
	}
	scheme, tok, ok := strings.Cut(values[0], " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", errors.New(`authorization must be "Bearer <join token>"`)
	}
	return tok, nil
}

// tokenRefusal names why a join token was refused, for the log.
func tokenRefusal(err error) string {
	switch {
	case errors.Is(err, token.ErrExpired):
		return "expired"
	case errors.Is(err, token.ErrRevoked):
		return "revoked"
	case errors.Is(err, token.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, token.ErrMalformed):
		return "malformed"
	default:
		return "invalid"
	}
}
