package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// maxResponseBytes bounds what the client reads from the server.
const maxResponseBytes = 64 << 20

// Client talks to the control plane's API server over HTTPS, trusting only
// the CA of its config and sending its API credential on every request.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// New makes a client from a validated config.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("client config: %w", err)
	}
	base, err := url.Parse(strings.TrimSuffix(cfg.Server, "/"))
	if err != nil {
		return nil, fmt.Errorf("client config: server: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(cfg.CACert)) {
		return nil, errors.New("client config: caCert: no PEM certificate found")
	}
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{
		base:  base,
		token: cfg.Token,
		http:  &http.Client{Transport: transport, Timeout: 60 * time.Second},
	}, nil
}

// Server returns the URL of the API server.
func (c *Client) Server() string { return c.base.String() }

// Apply sends one file of resources, YAML or JSON, possibly several
// documents. The server applies all of them in one transaction or none:
// a rejected apply returns an *APIError whose Details list every problem.
// source names the file in error messages.
func (c *Client) Apply(ctx context.Context, data []byte, source string) ([]ApplyResult, error) {
	q := url.Values{}
	if source != "" {
		q.Set("source", source)
	}
	var resp ApplyResponse
	if err := c.do(ctx, http.MethodPost, "/api/v1/apply", q, "application/yaml", data, &resp); err != nil {
		return nil, err
	}
	return resp.Results, nil
}

// Get returns one resource. A missing resource is an *APIError for which
// IsNotFound reports true.
func (c *Client) Get(ctx context.Context, kind, namespace, name string) (*v1alpha1.Object, error) {
	if name == "" {
		return nil, errors.New("get: resource name is empty")
	}
	var obj v1alpha1.Object
	if err := c.do(ctx, http.MethodGet, "/api/v1/resources", resourceQuery(kind, namespace, name), "", nil, &obj); err != nil {
		return nil, err
	}
	return &obj, nil
}

// List returns the resources of a kind in a namespace, or in every
// namespace when namespace is empty.
func (c *Client) List(ctx context.Context, kind, namespace string) ([]*v1alpha1.Object, error) {
	var list ObjectList
	if err := c.do(ctx, http.MethodGet, "/api/v1/resources", resourceQuery(kind, namespace, ""), "", nil, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// Delete removes one resource.
func (c *Client) Delete(ctx context.Context, kind, namespace, name string) error {
	if name == "" {
		return errors.New("delete: resource name is empty")
	}
	return c.do(ctx, http.MethodDelete, "/api/v1/resources", resourceQuery(kind, namespace, name), "", nil, nil)
}

// CreateToken asks for a join token bound to a service and namespace. A
// zero ttl leaves the lifetime to the server's default.
func (c *Client) CreateToken(ctx context.Context, service, namespace string, ttl time.Duration) (TokenResponse, error) {
	req := TokenRequest{Service: service, Namespace: namespace}
	if ttl != 0 {
		req.TTL = ttl.String()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return TokenResponse{}, fmt.Errorf("create token: %w", err)
	}
	var resp TokenResponse
	if err := c.do(ctx, http.MethodPost, "/api/v1/tokens", nil, "application/json", body, &resp); err != nil {
		return TokenResponse{}, err
	}
	return resp, nil
}

// Tokens lists the join tokens that have not expired long ago, oldest
// first, in one namespace or, when namespace is empty, in every namespace
// the credential may see.
func (c *Client) Tokens(ctx context.Context, namespace string) ([]TokenInfo, error) {
	q := url.Values{}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	var list TokenList
	if err := c.do(ctx, http.MethodGet, "/api/v1/tokens", q, "", nil, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// RevokeToken revokes a join token by ID; a proxy that has not joined with
// it yet cannot any more. It returns what the token was.
func (c *Client) RevokeToken(ctx context.Context, id string) (TokenInfo, error) {
	if id == "" {
		return TokenInfo{}, errors.New("revoke token: ID is empty")
	}
	var info TokenInfo
	err := c.do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(id), nil, "", nil, &info)
	return info, err
}

// CreateCredential asks for a new API credential; its secret is in the
// response and nowhere else.
func (c *Client) CreateCredential(ctx context.Context, req CredentialRequest) (CredentialResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return CredentialResponse{}, fmt.Errorf("create credential: %w", err)
	}
	var resp CredentialResponse
	if err := c.do(ctx, http.MethodPost, "/api/v1/credentials", nil, "application/json", body, &resp); err != nil {
		return CredentialResponse{}, err
	}
	return resp, nil
}

// Credentials lists every API credential, oldest first, without secrets.
func (c *Client) Credentials(ctx context.Context) ([]CredentialInfo, error) {
	var list CredentialList
	if err := c.do(ctx, http.MethodGet, "/api/v1/credentials", nil, "", nil, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// RevokeCredential revokes an API credential by ID and returns what it was.
func (c *Client) RevokeCredential(ctx context.Context, id string) (CredentialInfo, error) {
	if id == "" {
		return CredentialInfo{}, errors.New("revoke credential: ID is empty")
	}
	var info CredentialInfo
	err := c.do(ctx, http.MethodDelete, "/api/v1/credentials/"+url.PathEscape(id), nil, "", nil, &info)
	return info, err
}

// Audit returns the newest entries of the audit log, newest first; a limit
// of 0 leaves the number to the server.
func (c *Client) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var list AuditList
	if err := c.do(ctx, http.MethodGet, "/api/v1/audit", q, "", nil, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// Workloads lists registered workloads, optionally only those of one
// namespace and service.
func (c *Client) Workloads(ctx context.Context, namespace, service string) ([]*meshv1.Workload, error) {
	q := url.Values{}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	if service != "" {
		q.Set("service", service)
	}
	var list WorkloadList
	if err := c.do(ctx, http.MethodGet, "/api/v1/workloads", q, "", nil, &list); err != nil {
		return nil, err
	}
	out := make([]*meshv1.Workload, 0, len(list.Items))
	for i, raw := range list.Items {
		w := &meshv1.Workload{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, w); err != nil {
			return nil, fmt.Errorf("decode workload %d from %s: %w", i, c.base, err)
		}
		out = append(out, w)
	}
	return out, nil
}

// Version returns the server's version.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var v VersionInfo
	err := c.do(ctx, http.MethodGet, "/api/v1/version", nil, "", nil, &v)
	return v, err
}

// IsNotFound reports whether err is the server saying a resource does not exist.
func IsNotFound(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound
}

func resourceQuery(kind, namespace, name string) url.Values {
	q := url.Values{"kind": {kind}}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	if name != "" {
		q.Set("name", name)
	}
	return q
}

// do sends one request and decodes a JSON answer into out (unless out is nil).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, contentType string, body []byte, out any) error {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the control plane at %s: %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// decodeError turns a failed response into an *APIError, keeping the
// server's message when the body is the API's JSON error.
func decodeError(resp *http.Response, data []byte) error {
	apiErr := &APIError{Status: resp.StatusCode}
	var body ErrorResponse
	if err := json.Unmarshal(data, &body); err == nil && body.Error != "" {
		apiErr.Message = body.Error
		apiErr.Details = body.Details
		return apiErr
	}
	// Not our server's JSON (a proxy in between, say): show what came back.
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	apiErr.Message = "server answered " + resp.Status
	if msg != "" {
		apiErr.Message += ": " + msg
	}
	return apiErr
}

// unwrapURLError drops *url.Error's "Get \"https://...\":" prefix, which
// repeats what the caller's message already says.
func unwrapURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
