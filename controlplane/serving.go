package controlplane

import (
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"github.com/weftmesh/weft/controlplane/ca"
)

// servingCert is the control plane's own certificate, renewed at half-life.
type servingCert struct {
	authority *ca.CA
	hosts     []string

	mu   sync.Mutex
	cert *tls.Certificate
	// generation is the CA's when cert was issued: a root rotation makes
	// it re-issue at once.
	generation uint64
}

func newServingCert(authority *ca.CA, hosts []string) (*servingCert, error) {
	s := &servingCert{authority: authority, hosts: hosts}
	if _, err := s.get(nil); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *servingCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gen := s.authority.Generation()
	if s.cert != nil && s.generation == gen && time.Now().Before(s.cert.Leaf.NotBefore.Add(servingCertTTL/2)) {
		return s.cert, nil
	}
	s.generation = gen
	c, err := s.authority.ServingCertificate(s.hosts, servingCertTTL)
	if err != nil {
		return nil, fmt.Errorf("control: issue serving certificate: %w", err)
	}
	s.cert = &c
	return s.cert, nil
}
