package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// proxyConfigSections are what `weft proxy-config` shows, in the proxy's
// config_dump's own words.
var proxyConfigSections = []string{"listeners", "routes", "clusters", "endpoints", "secrets"}

func newProxyConfigCmd(root *rootOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "proxy-config WORKLOAD listeners|routes|clusters|endpoints|secrets",
		Short: "Show a proxy's live configuration",
		Long: `Show the configuration a workload's proxy is serving now, read from its admin
port through the control plane: its listeners, routes, clusters, endpoints or
secrets. WORKLOAD is a workload ID as 'weft get workloads' lists them. Secrets
show certificates only: the private key never leaves the proxy.`,
		Example: `  weft proxy-config catalog.shop@127.0.1.2:15006 clusters
  weft proxy-config catalog.shop@127.0.1.2:15006 routes -o json`,
		Args: argsBetween(2, 2, "a WORKLOAD and one of "+strings.Join(proxyConfigSections, ", ")),
		RunE: func(cmd *cobra.Command, args []string) error {
			section := args[1]
			if !containsString(proxyConfigSections, section) {
				return usagef("unknown section %q; use one of %s", section, strings.Join(proxyConfigSections, ", "))
			}
			format, err := parseFormat(output)
			if err != nil {
				return err
			}
			if format == formatYAML {
				return usagef("weft proxy-config prints table or json")
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			pc, err := c.ProxyConfig(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var dump struct {
				Resources configDump `json:"resources"`
			}
			if err := json.Unmarshal(pc.ConfigDump, &dump); err != nil {
				return fmt.Errorf("proxy-config: decode the config dump of %s: %w", args[0], err)
			}
			d := dump.Resources
			w := cmd.OutOrStdout()
			if format == formatJSON {
				v := map[string]any{}
				switch section {
				case "listeners":
					v["listeners"], v["bound_listeners"] = d.Listeners, d.BoundListeners
				case "routes":
					v["routes"] = d.Routes
				case "clusters":
					v["clusters"] = d.Clusters
				case "endpoints":
					v["endpoints"] = d.Endpoints
				case "secrets":
					v["secrets"], v["certificates"] = d.Secrets, pc.Certificates
				}
				return writeIndentedJSON(w, v)
			}
			switch section {
			case "listeners":
				printListeners(w, d)
			case "routes":
				printRouteConfigs(w, d)
			case "clusters":
				printClusters(w, d)
			case "endpoints":
				printEndpoints(w, d)
			case "secrets":
				printSecrets(w, d, pc.Certificates)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// configDump is the proxy's /config_dump "resources" (proxy/runtime.ConfigDump),
// each resource in protojson, read as plain JSON.
type configDump struct {
	Listeners      map[string]jsonObj `json:"listeners"`
	Routes         map[string]jsonObj `json:"routes"`
	Clusters       map[string]jsonObj `json:"clusters"`
	Endpoints      map[string]jsonObj `json:"endpoints"`
	Secrets        map[string]jsonObj `json:"secrets"`
	BoundListeners map[string]string  `json:"bound_listeners"`
}

// jsonObj is a JSON object read without a schema.
type jsonObj map[string]any

func (o jsonObj) obj(k string) jsonObj {
	m, _ := o[k].(map[string]any)
	return m
}

func (o jsonObj) list(k string) []jsonObj {
	l, _ := o[k].([]any)
	out := make([]jsonObj, 0, len(l))
	for _, e := range l {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func (o jsonObj) str(k string) string {
	switch v := o[k].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func socketAddr(a jsonObj) string {
	sa := a.obj("socketAddress")
	if sa == nil {
		return ""
	}
	return sa.str("address") + ":" + orZero(sa.str("portValue"))
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func typeName(typed jsonObj) string {
	t := typed.str("@type")
	return t[strings.LastIndex(t, ".")+1:]
}

func printListeners(w io.Writer, d configDump) {
	tw := newTable(w)
	writeRow(tw, []string{"NAME", "ADDRESS", "BOUND", "TLS", "FILTERS", "DESTINATION"})
	for _, name := range sortedNames(d.Listeners) {
		l := d.Listeners[name]
		for i, fc := range l.list("filterChains") {
			tls := "-"
			if fc.obj("transportSocket") != nil {
				tls = "mtls"
			}
			var filters []string
			dest := "-"
			for _, f := range fc.list("filters") {
				tc := f.obj("typedConfig")
				filters = append(filters, typeName(tc))
				switch {
				case tc.obj("rds") != nil:
					dest = "route " + tc.obj("rds").str("routeConfigName")
				case tc.obj("routeConfig") != nil:
					dest = "route " + tc.obj("routeConfig").str("name") + " (inline)"
				case tc.str("cluster") != "":
					dest = "cluster " + tc.str("cluster")
				case tc.obj("weightedClusters") != nil:
					var cs []string
					for _, c := range tc.obj("weightedClusters").list("clusters") {
						cs = append(cs, c.str("name")+"="+c.str("weight"))
					}
					dest = "clusters " + strings.Join(cs, ",")
				}
			}
			shown := name
			if i > 0 {
				shown = name + "#" + strconv.Itoa(i)
			}
			writeRow(tw, []string{shown, socketAddr(l.obj("address")), orDash(d.BoundListeners[name]), tls, strings.Join(filters, ","), dest})
		}
	}
	tw.Flush()
}

func printRouteConfigs(w io.Writer, d configDump) {
	tw := newTable(w)
	writeRow(tw, []string{"ROUTE-CONFIG", "VIRTUAL-HOST", "DOMAINS", "MATCH", "ROUTE", "CLUSTERS"})
	routes := map[string]jsonObj{}
	for name, rc := range d.Routes {
		routes[name] = rc
	}
	// Inline route configurations (the inbound listener's) are routes too.
	for _, l := range d.Listeners {
		for _, fc := range l.list("filterChains") {
			for _, f := range fc.list("filters") {
				if rc := f.obj("typedConfig").obj("routeConfig"); rc != nil {
					routes[rc.str("name")] = rc
				}
			}
		}
	}
	for _, name := range sortedNames(routes) {
		for _, vh := range routes[name].list("virtualHosts") {
			var domains []string
			ds, _ := vh["domains"].([]any)
			for _, d := range ds {
				domains = append(domains, fmt.Sprint(d))
			}
			for _, r := range vh.list("routes") {
				writeRow(tw, []string{name, vh.str("name"), truncate(strings.Join(domains, ","), 40), routeMatch(r.obj("match")), orDash(r.str("name")), routeClusters(r.obj("route"))})
			}
		}
	}
	tw.Flush()
}

func routeMatch(m jsonObj) string {
	var s string
	switch {
	case m.str("path") != "":
		s = m.str("path")
	case m.str("pathSeparatedPrefix") != "":
		s = m.str("pathSeparatedPrefix") + "/*"
	case m.obj("safeRegex") != nil:
		s = "~" + m.obj("safeRegex").str("regex")
	case m.str("prefix") != "":
		s = m.str("prefix") + "*"
	default:
		s = "*"
	}
	for _, h := range m.list("headers") {
		s += " " + h.str("name")
	}
	return s
}

func routeClusters(a jsonObj) string {
	if a == nil {
		return "-"
	}
	if c := a.str("cluster"); c != "" {
		return c
	}
	var cs []string
	for _, c := range a.obj("weightedClusters").list("clusters") {
		cs = append(cs, c.str("name")+"="+c.str("weight"))
	}
	return orDash(strings.Join(cs, ","))
}

func printClusters(w io.Writer, d configDump) {
	tw := newTable(w)
	writeRow(tw, []string{"NAME", "TYPE", "LB", "PROTOCOL", "TLS", "PEER"})
	for _, name := range sortedNames(d.Clusters) {
		c := d.Clusters[name]
		typ := c.str("type")
		if typ == "" {
			typ = "STATIC"
		}
		lb := c.str("lbPolicy")
		if lb == "" {
			lb = "ROUND_ROBIN"
		}
		protocol := "-"
		for _, v := range c.obj("typedExtensionProtocolOptions") {
			m, _ := v.(map[string]any)
			switch explicit := jsonObj(m).obj("explicitHttpConfig"); {
			case jsonObj(m).obj("useDownstreamProtocolConfig") != nil:
				protocol = "DOWNSTREAM"
			case explicit.obj("http2ProtocolOptions") != nil:
				protocol = "HTTP/2"
			case explicit.obj("httpProtocolOptions") != nil:
				protocol = "HTTP/1.1"
			}
		}
		tls, peer := "-", "-"
		if ts := c.obj("transportSocket"); ts != nil {
			tls = "mtls"
			peer = firstSAN(ts.obj("typedConfig"))
		}
		writeRow(tw, []string{name, typ, lb, protocol, tls, peer})
	}
	tw.Flush()
}

// firstSAN finds the SPIFFE ID an upstream TLS context expects.
func firstSAN(tc jsonObj) string {
	vc := tc.obj("commonTlsContext").obj("combinedValidationContext").obj("defaultValidationContext")
	for _, m := range vc.list("matchTypedSubjectAltNames") {
		if e := m.obj("matcher").str("exact"); e != "" {
			return e
		}
	}
	return "-"
}

func printEndpoints(w io.Writer, d configDump) {
	tw := newTable(w)
	writeRow(tw, []string{"CLUSTER", "ENDPOINT", "HEALTH", "WEIGHT", "WORKLOAD", "VERSION"})
	for _, name := range sortedNames(d.Endpoints) {
		for _, loc := range d.Endpoints[name].list("endpoints") {
			for _, e := range loc.list("lbEndpoints") {
				md := e.obj("metadata").obj("filterMetadata").obj("weft")
				writeRow(tw, []string{name, socketAddr(e.obj("endpoint").obj("address")), orDash(e.str("healthStatus")),
					orDash(e.str("loadBalancingWeight")), orDash(md.str("workload")), orDash(md.str("version"))})
			}
		}
	}
	tw.Flush()
}

func printSecrets(w io.Writer, d configDump, certs json.RawMessage) {
	tw := newTable(w)
	writeRow(tw, []string{"NAME", "TYPE", "DETAIL"})
	var c struct {
		SVID *struct {
			SpiffeID string `json:"spiffeID"`
			Serial   string `json:"serial"`
			NotAfter string `json:"notAfter"`
		} `json:"svid"`
		TrustBundle []struct {
			Subject string `json:"subject"`
			SHA256  string `json:"sha256"`
		} `json:"trustBundle"`
	}
	if len(certs) > 0 {
		_ = json.Unmarshal(certs, &c)
	}
	if c.SVID != nil {
		writeRow(tw, []string{"default", "certificate (SVID)", fmt.Sprintf("%s serial %s expires %s; private key kept in the proxy", c.SVID.SpiffeID, c.SVID.Serial, c.SVID.NotAfter)})
	}
	for _, name := range sortedNames(d.Secrets) {
		s := d.Secrets[name]
		switch {
		case s.obj("validationContext") != nil:
			writeRow(tw, []string{name, "trust bundle", fmt.Sprintf("%d root(s)", len(c.TrustBundle))})
		case s.obj("tlsCertificate") != nil:
			writeRow(tw, []string{name, "certificate", "private key not shown"})
		default:
			writeRow(tw, []string{name, "other", "-"})
		}
	}
	tw.Flush()
	for _, r := range c.TrustBundle {
		short := r.SHA256
		if len(short) > 16 {
			short = short[:16]
		}
		fmt.Fprintf(w, "root %s sha256:%s\n", r.Subject, short)
	}
}
