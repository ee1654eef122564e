package runtime

import (
	"encoding/json"
	"fmt"
	"io"
	"net"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// ConfigDump is the applied configuration as /config_dump shows it: every
// resource in protojson, by type and name, and the addresses listeners are
// bound to (which differ from the configured ones for port 0).
type ConfigDump struct {
	Listeners      map[string]json.RawMessage `json:"listeners"`
	Routes         map[string]json.RawMessage `json:"routes"`
	Clusters       map[string]json.RawMessage `json:"clusters"`
	Endpoints      map[string]json.RawMessage `json:"endpoints"`
	Secrets        map[string]json.RawMessage `json:"secrets"`
	BoundListeners map[string]string          `json:"bound_listeners"`
}

// ConfigDump returns a JSON-marshalable view of the applied resources.
func (r *Runtime) ConfigDump() any {
	s := r.cur.Load()
	d := &ConfigDump{
		Listeners: dumpAll(s.res.Listeners), Routes: dumpAll(s.res.Routes),
		Clusters: dumpAll(s.res.Clusters), Endpoints: dumpAll(s.res.Endpoints),
		Secrets: dumpAll(s.res.Secrets), BoundListeners: map[string]string{},
	}
	for name := range s.listeners {
		if a := r.ListenerAddr(name); a != nil {
			d.BoundListeners[name] = a.String()
		}
	}
	return d
}

func dumpAll[M proto.Message](m map[string]M) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(m))
	for name, msg := range m {
		b, err := protojson.Marshal(msg)
		if err != nil {
			b, _ = json.Marshal(map[string]string{"error": err.Error()})
		}
		out[name] = b
	}
	return out
}

// ListenerAddr returns the address a listener of the applied configuration
// is bound to, or nil.
func (r *Runtime) ListenerAddr(name string) net.Addr {
	lc, ok := r.cur.Load().listeners[name]
	if !ok {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sockets[lc.bindKey()]; ok {
		return s.ln.Addr()
	}
	return nil
}

// WriteClusters writes the clusters in service the way Envoy's /clusters
// does: one "cluster::field::value" or "cluster::host::stat::value" a line.
func (r *Runtime) WriteClusters(w io.Writer) {
	s := r.cur.Load()
	for _, name := range sortedKeys(s.clusters) {
		st := s.clusters[name]
		set := st.c.Pool().Settings()
		protocol := set.Protocol.String()
		transport := "plaintext"
		if set.TLS != nil {
			transport = "mtls"
		}
		fmt.Fprintf(w, "%s::type::%s\n", name, st.kind)
		fmt.Fprintf(w, "%s::lb_policy::%s\n", name, st.balancer)
		fmt.Fprintf(w, "%s::protocol::%s\n", name, protocol)
		fmt.Fprintf(w, "%s::transport::%s\n", name, transport)
		for _, ep := range st.c.Endpoints() {
			h := fmt.Sprintf("%s::%s", name, ep.Address())
			es := ep.Stats()
			health := ep.HealthFlags()
			fmt.Fprintf(w, "%s::health_flags::%s\n", h, health)
			fmt.Fprintf(w, "%s::cx_active::%d\n", h, es.ActiveConnections)
			fmt.Fprintf(w, "%s::cx_total::%d\n", h, es.TotalConnections)
			fmt.Fprintf(w, "%s::cx_connect_fail::%d\n", h, es.ConnectFailures)
			fmt.Fprintf(w, "%s::rq_active::%d\n", h, es.ActiveRequests)
			fmt.Fprintf(w, "%s::rq_total::%d\n", h, es.TotalRequests)
			fmt.Fprintf(w, "%s::rq_error::%d\n", h, es.FailedRequests)
			if ep.Workload() != "" {
				fmt.Fprintf(w, "%s::workload::%s\n", h, ep.Workload())
			}
			if ep.Version() != "" {
				fmt.Fprintf(w, "%s::version::%s\n", h, ep.Version())
			}
		}
	}
}
