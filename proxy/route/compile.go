package route

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/proxy/xdswire"
)

func fieldErr(path string, format string, args ...any) error {
	return &xdswire.FieldError{Path: path, Err: fmt.Errorf(format, args...)}
}

// Compile builds a Table from a RouteConfiguration whose fields have been
// checked against what the proxy supports. resolve turns a cluster name into
// the route's Target; it is called once per route. Errors name the field.
func Compile[T any](rc *routev3.RouteConfiguration, resolve func(cluster string) T) (*Table[T], error) {
	t := &Table[T]{
		name:       rc.GetName(),
		ignorePort: rc.GetIgnorePortInHostMatching(),
		exact:      map[string]*VirtualHost[T]{},
	}
	seen := map[string]string{}
	for i, pvh := range rc.GetVirtualHosts() {
		path := fmt.Sprintf("virtual_hosts[%d]", i)
		vh := &VirtualHost[T]{Name: pvh.GetName()}
		reqEdits, err := compileHeaderEdits(pvh.GetRequestHeadersToAdd(), pvh.GetRequestHeadersToRemove(),
			path, "request_headers_to_add", "request_headers_to_remove")
		if err != nil {
			return nil, err
		}
		resEdits, err := compileHeaderEdits(pvh.GetResponseHeadersToAdd(), pvh.GetResponseHeadersToRemove(),
			path, "response_headers_to_add", "response_headers_to_remove")
		if err != nil {
			return nil, err
		}
		for j, pr := range pvh.GetRoutes() {
			r, err := compileRoute(pr, resolve, fmt.Sprintf("%s.routes[%d]", path, j))
			if err != nil {
				return nil, err
			}
			if !reqEdits.Empty() {
				r.RequestEdits = append(r.RequestEdits, &reqEdits)
			}
			if !resEdits.Empty() {
				r.ResponseEdits = append(r.ResponseEdits, &resEdits)
			}
			vh.Routes = append(vh.Routes, r)
		}
		if len(pvh.GetDomains()) == 0 {
			return nil, fieldErr(path+".domains", "at least one domain is required")
		}
		for j, d := range pvh.GetDomains() {
			dpath := fmt.Sprintf("%s.domains[%d]", path, j)
			d = strings.ToLower(d)
			if prev, dup := seen[d]; dup {
				return nil, fieldErr(dpath, "domain %q is also served by %s", d, prev)
			}
			seen[d] = path
			if err := t.addDomain(d, vh); err != nil {
				return nil, &xdswire.FieldError{Path: dpath, Err: err}
			}
		}
	}
	// Longest wildcard first: the most specific one wins, as in Envoy.
	byLen := func(w []wildcard[T]) {
		sort.SliceStable(w, func(a, b int) bool { return len(w[a].affix) > len(w[b].affix) })
	}
	byLen(t.suffixes)
	byLen(t.prefixes)
	return t, nil
}

func (t *Table[T]) addDomain(d string, vh *VirtualHost[T]) error {
	switch n := strings.Count(d, "*"); {
	case d == "":
		return errors.New("empty domain")
	case d == "*":
		t.any = vh
	case n == 0:
		t.exact[d] = vh
	case n > 1:
		return fmt.Errorf("domain %q has more than one wildcard", d)
	case strings.HasPrefix(d, "*"):
		t.suffixes = append(t.suffixes, wildcard[T]{affix: d[1:], vh: vh})
	case strings.HasSuffix(d, "*"):
		t.prefixes = append(t.prefixes, wildcard[T]{affix: d[:len(d)-1], vh: vh})
	default:
		return fmt.Errorf("domain %q: a wildcard must come first or last", d)
	}
	return nil
}

func compileRoute[T any](pr *routev3.Route, resolve func(string) T, path string) (Route[T], error) {
	r := Route[T]{Name: pr.GetName(), ClusterNotFoundCode: http.StatusServiceUnavailable}
	m, err := compileMatch(pr.GetMatch(), path+".match")
	if err != nil {
		return r, err
	}
	r.match = m
	if r.req, err = compileRequestMatch(pr.GetMatch(), path+".match"); err != nil {
		return r, err
	}
	action := pr.GetRoute()
	if action == nil {
		if dr := pr.GetDirectResponse(); dr != nil {
			return compileDirect(r, pr, dr, path)
		}
		if rd := pr.GetRedirect(); rd != nil {
			return compileRedirect(r, pr, rd, path)
		}
		return r, fieldErr(path, "a route action or direct_response is required (or a redirect)")
	}
	apath := path + ".route"
	switch cs := action.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		r.Cluster = cs.Cluster
		if r.Cluster == "" {
			return r, fieldErr(apath+".cluster", "a cluster name is required")
		}
		r.Target = resolve(r.Cluster)
	case *routev3.RouteAction_WeightedClusters:
		if err := compileWeighted(&r, cs.WeightedClusters, resolve, apath+".weighted_clusters"); err != nil {
			return r, err
		}
	default:
		return r, fieldErr(apath+".cluster", "a cluster name is required")
	}
	if rp := action.GetRetryPolicy(); rp != nil {
		if r.Retry, err = compileRetry(rp, apath+".retry_policy"); err != nil {
			return r, err
		}
	}
	for i, mp := range action.GetRequestMirrorPolicies() {
		mr, err := compileMirror(mp, resolve, fmt.Sprintf("%s.request_mirror_policies[%d]", apath, i))
		if err != nil {
			return r, err
		}
		r.Mirrors = append(r.Mirrors, mr)
	}
	for i, hp := range action.GetHashPolicy() {
		h, err := compileHashPolicy(hp, fmt.Sprintf("%s.hash_policy[%d]", apath, i))
		if err != nil {
			return r, err
		}
		r.HashPolicy = append(r.HashPolicy, h)
	}
	reqEdits, err := compileHeaderEdits(pr.GetRequestHeadersToAdd(), pr.GetRequestHeadersToRemove(),
		path, "request_headers_to_add", "request_headers_to_remove")
	if err != nil {
		return r, err
	}
	if !reqEdits.Empty() {
		r.RequestEdits = append(r.RequestEdits, &reqEdits)
	}
	resEdits, err := compileHeaderEdits(pr.GetResponseHeadersToAdd(), pr.GetResponseHeadersToRemove(),
		path, "response_headers_to_add", "response_headers_to_remove")
	if err != nil {
		return r, err
	}
	if !resEdits.Empty() {
		r.ResponseEdits = append(r.ResponseEdits, &resEdits)
	}
	if r.PerFilter, err = compilePerFilter(pr.GetTypedPerFilterConfig(), path); err != nil {
		return r, err
	}
	if d := action.GetTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return r, fieldErr(apath+".timeout", "invalid duration")
		}
		r.Timeout = d.AsDuration()
	}
	switch c := action.GetClusterNotFoundResponseCode(); c {
	case routev3.RouteAction_SERVICE_UNAVAILABLE:
	case routev3.RouteAction_NOT_FOUND:
		r.ClusterNotFoundCode = http.StatusNotFound
	case routev3.RouteAction_INTERNAL_SERVER_ERROR:
		r.ClusterNotFoundCode = http.StatusInternalServerError
	default:
		return r, fieldErr(apath+".cluster_not_found_response_code", "unknown code %v", c)
	}
	for i, u := range action.GetUpgradeConfigs() {
		t := strings.ToLower(u.GetUpgradeType())
		if t != "websocket" {
			return r, fieldErr(fmt.Sprintf("%s.upgrade_configs[%d].upgrade_type", apath, i),
				"upgrade %q is not supported (only websocket)", u.GetUpgradeType())
		}
		if r.Upgrades == nil {
			r.Upgrades = map[string]bool{}
		}
		r.Upgrades[t] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}
	return r, nil
}

func compileMatch(m *routev3.RouteMatch, path string) (pathMatch, error) {
	pm := pathMatch{caseSensitive: m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()}
	switch spec := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		pm.kind, pm.value = matchPrefix, spec.Prefix
	case *routev3.RouteMatch_Path:
		pm.kind, pm.value = matchPath, spec.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		pm.kind, pm.value = matchSeparatedPrefix, spec.PathSeparatedPrefix
		if !strings.HasPrefix(pm.value, "/") || strings.HasSuffix(pm.value, "/") || strings.ContainsAny(pm.value, "?#") {
			return pm, fieldErr(path+".path_separated_prefix", "%q must start with / and not end with / nor hold ? or #", pm.value)
		}
	case *routev3.RouteMatch_SafeRegex:
		pm.kind = matchRegex
		expr := "^(?:" + spec.SafeRegex.GetRegex() + ")$"
		if !pm.caseSensitive {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return pm, &xdswire.FieldError{Path: path + ".safe_regex.regex", Err: err}
		}
		pm.re = re
	case nil:
		return pm, fieldErr(path, "a path specifier (prefix, path, safe_regex or path_separated_prefix) is required")
	default:
		return pm, fieldErr(path, "path specifier %T is not supported", spec)
	}
	return pm, nil
}
