// Package route compiles an xDS RouteConfiguration into a Table that picks
// a Route for a request's host and path the way Envoy's router does:
// virtual host by most specific domain (exact, then the longest suffix
// wildcard, then the longest prefix wildcard, then "*"), then the first
// route of that virtual host whose match accepts the path, headers (the
// method as ":method") and query parameters. A route's action is compiled
// too: one cluster or a weighted split, retries, mirrors, header edits, hash
// policies and per-filter configs.
//
// A Table is immutable. Its routes carry a Target of the caller's type,
// resolved once at compile time from the route's cluster name, so a request
// neither looks clusters up nor parses anything.
package route

import (
	"regexp"
	"strings"
	"time"
)

// Table is a compiled RouteConfiguration.
type Table[T any] struct {
	name       string
	ignorePort bool
	exact      map[string]*VirtualHost[T]
	suffixes   []wildcard[T] // "*.example.com", longest first
	prefixes   []wildcard[T] // "example.*", longest first
	any        *VirtualHost[T]
}

type wildcard[T any] struct {
	affix string
	vh    *VirtualHost[T]
}

// VirtualHost is a set of routes for a set of domains.
type VirtualHost[T any] struct {
	Name   string
	Routes []Route[T]
}

// Route is one compiled route.
type Route[T any] struct {
	Name string
	// Cluster is the name of the route's cluster; Target is what the
	// compiler's resolver made of it.
	Cluster string
	Target  T
	// Timeout bounds the whole exchange with the upstream; zero means none.
	Timeout time.Duration
	// Upgrades overrides the connection manager's upgrade settings by
	// upgrade type (lower case); absent types inherit.
	Upgrades map[string]bool
	// ClusterNotFoundCode is the status sent when the cluster is not
	// configured (Envoy's cluster_not_found_response_code, 503 by default).
	ClusterNotFoundCode int
	// Backends, when set, split requests by weight (weighted_clusters);
	// Cluster and Target are then unset. Pick chooses.
	Backends []Backend[T]
	// Retry is the route's retry_policy, or nil.
	Retry *RetryPolicy
	// Mirrors copy a share of requests to other clusters.
	Mirrors []Mirror[T]
	// HashPolicy makes the hash key handed to the cluster's balancer.
	HashPolicy []HashPolicy
	// RequestEdits and ResponseEdits apply in order: the route's, then its
	// virtual host's, so the least specific overwrite wins, as in Envoy.
	RequestEdits  []*HeaderEdits
	ResponseEdits []*HeaderEdits
	// PerFilter holds typed_per_filter_config compiled by each filter,
	// keyed by filter name.
	PerFilter map[string]any
	// Direct, when set, is the reply the proxy sends itself
	// (direct_response); the route then has no cluster.
	Direct *DirectResponse
	// Redirect, when set, answers with a redirect (redirect.go); the route
	// then has no cluster.
	Redirect *Redirect

	totalWeight uint64
	match       pathMatch
	req         requestMatch
}

type matchKind uint8

const (
	matchPrefix matchKind = iota
	matchPath
	matchRegex
	matchSeparatedPrefix
)

type pathMatch struct {
	kind          matchKind
	value         string
	caseSensitive bool
	re            *regexp.Regexp
}

// Name returns the RouteConfiguration's name.
func (t *Table[T]) Name() string { return t.name }

// Match returns the route for a request, or nil when no virtual host or no
// route matches (a 404). host is the request's Host or :authority; path is
// its request target in origin form, query included.
func (t *Table[T]) Match(host, path string) *Route[T] {
	return t.MatchRequest(&Request{Host: host, Path: path})
}

// MatchRequest returns the first route of the request's virtual host whose
// path, header and query parameter matches all accept it, or nil.
func (t *Table[T]) MatchRequest(req *Request) *Route[T] {
	vh := t.VirtualHost(req.Host)
	if vh == nil {
		return nil
	}
	for i := range vh.Routes {
		if r := &vh.Routes[i]; r.match.matches(req.Path) && r.req.matches(req) {
			return r
		}
	}
	return nil
}

// VirtualHost returns the virtual host serving host, or nil.
func (t *Table[T]) VirtualHost(host string) *VirtualHost[T] {
	if hasUpper(host) {
		host = strings.ToLower(host)
	}
	if t.ignorePort {
		host = stripPort(host)
	}
	if vh, ok := t.exact[host]; ok {
		return vh
	}
	for _, w := range t.suffixes {
		if len(host) > len(w.affix) && strings.HasSuffix(host, w.affix) {
			return w.vh
		}
	}
	for _, w := range t.prefixes {
		if len(host) > len(w.affix) && strings.HasPrefix(host, w.affix) {
			return w.vh
		}
	}
	return t.any
}

func (m *pathMatch) matches(path string) bool {
	if m.kind != matchPrefix {
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
	}
	switch m.kind {
	case matchPrefix:
		if m.caseSensitive {
			return strings.HasPrefix(path, m.value)
		}
		return len(path) >= len(m.value) && strings.EqualFold(path[:len(m.value)], m.value)
	case matchPath:
		if m.caseSensitive {
			return path == m.value
		}
		return strings.EqualFold(path, m.value)
	case matchSeparatedPrefix:
		if len(path) < len(m.value) {
			return false
		}
		head := path[:len(m.value)]
		if !(m.caseSensitive && head == m.value || !m.caseSensitive && strings.EqualFold(head, m.value)) {
			return false
		}
		return len(path) == len(m.value) || path[len(m.value)] == '/'
	default:
		return m.re.MatchString(path)
	}
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// stripPort removes a trailing ":port" from a host, IPv6 literals included.
func stripPort(host string) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[i:], ']') >= 0 {
		return host
	}
	if strings.IndexByte(host[:i], ':') >= 0 && !strings.HasPrefix(host, "[") {
		return host // a bare IPv6 address, no port
	}
	return host[:i]
}
