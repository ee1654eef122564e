package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/token"
)

const (
	// defaultTokenTTL is a join token's lifetime when the request names none.
	defaultTokenTTL = 24 * time.Hour
	maxTokenBody    = 64 << 10
)

// dnsLabel is what service and namespace names must look like (RFC 1123 label).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// createToken issues a join token bound to one service and namespace.
func (s *server) createToken(w http.ResponseWriter, r *http.Request) {
	req, ttl, err := readTokenRequest(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "token request: body too large")
			return
		}
		writeError(w, http.StatusBadRequest, "token request: "+err.Error())
		return
	}
	tok, rec, err := s.Tokens.Create(r.Context(), req.Service, req.Namespace, ttl)
	if err != nil {
		writeError(w, statusOf(err), fmt.Sprintf("create token for %s.%s: %v", req.Service, req.Namespace, err))
		return
	}
	s.Log.Info("api: join token created", "id", rec.ID, "service", rec.Service, "namespace", rec.Namespace,
		"expires", rec.ExpiresAt)
	writeJSON(w, http.StatusOK, client.TokenResponse{Token: tok, ID: rec.ID, ExpiresAt: rec.ExpiresAt})
}

func readTokenRequest(w http.ResponseWriter, r *http.Request) (client.TokenRequest, time.Duration, error) {
	var req client.TokenRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTokenBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return req, 0, errors.New(`body must be JSON such as {"service": "payments", "namespace": "default", "ttl": "24h"}`)
		}
		return req, 0, fmt.Errorf("invalid JSON: %w", err)
	}
	if req.Service == "" {
		return req, 0, errors.New("service: required")
	}
	if !dnsLabel.MatchString(req.Service) {
		return req, 0, fmt.Errorf("service: %q must be a DNS label (lower-case letters, digits and '-')", req.Service)
	}
	if req.Namespace == "" {
		req.Namespace = v1alpha1.DefaultNamespace
	}
	if !dnsLabel.MatchString(req.Namespace) {
		return req, 0, fmt.Errorf("namespace: %q must be a DNS label (lower-case letters, digits and '-')", req.Namespace)
	}
	ttl := defaultTokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			return req, 0, fmt.Errorf("ttl: %q is not a duration such as \"24h\"", req.TTL)
		}
		if d < token.MinTTL || d > token.MaxTTL {
			return req, 0, fmt.Errorf("ttl: %s is outside [%s, %s]", req.TTL, v1alpha1.FormatDuration(token.MinTTL), v1alpha1.FormatDuration(token.MaxTTL))
		}
		ttl = d
	}
	return req, ttl, nil
}
