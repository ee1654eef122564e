package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxTapLine bounds one tap event's JSON.
const maxTapLine = 1 << 20

// Stats returns the golden metrics over window (the server's default, one
// minute, when zero).
func (c *Client) Stats(ctx context.Context, window time.Duration) (*Stats, error) {
	q := url.Values{}
	if window > 0 {
		q.Set("window", window.String())
	}
	var st Stats
	if err := c.do(ctx, http.MethodGet, "/api/v1/stats", q, "", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// TapOptions select what Tap streams; see GET /api/v1/tap.
type TapOptions struct {
	Service, Namespace string
	// Direction is "inbound" (the server's default) or "outbound".
	Direction               string
	Path, Method, Authority string
}

// Tap streams live requests, calling fn for each, until ctx is done (nil
// is returned then), fn returns an error, or the server ends the stream.
func (c *Client) Tap(ctx context.Context, o TapOptions, fn func(TapEvent) error) error {
	q := url.Values{}
	for k, v := range map[string]string{"service": o.Service, "namespace": o.Namespace, "direction": o.Direction,
		"path": o.Path, "method": o.Method, "authority": o.Authority} {
		if v != "" {
			q.Set(k, v)
		}
	}
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/tap"
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("tap: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/x-ndjson")
	// A stream has no overall timeout: it lasts as long as ctx.
	stream := &http.Client{Transport: c.http.Transport}
	resp, err := stream.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot reach the control plane at %s: %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return decodeError(resp, data)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxTapLine)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var ev TapEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("tap: decode event: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("tap: %w", err)
	}
	return nil
}

// ProxyConfig returns a workload's live proxy configuration.
func (c *Client) ProxyConfig(ctx context.Context, workload string) (*ProxyConfig, error) {
	var pc ProxyConfig
	if err := c.do(ctx, http.MethodGet, "/api/v1/proxy-config", url.Values{"workload": {workload}}, "", nil, &pc); err != nil {
		return nil, err
	}
	return &pc, nil
}
