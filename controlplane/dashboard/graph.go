package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// Health of a service or an edge, by success rate (and, for a service, by
// whether any instance is ready). The page colours by it.
const (
	HealthHealthy  = "healthy"  // success rate ≥ 99%
	HealthDegraded = "degraded" // success rate ≥ 95%
	HealthFailing  = "failing"  // below 95%, or no ready instance of a service that has some
	HealthIdle     = "idle"     // no requests in the window
)

// Success-rate thresholds of the health colours.
const (
	healthyRate  = 0.99
	degradedRate = 0.95
)

// Bounds of the ?window= of golden metrics.
const (
	minWindow = 5 * time.Second
	maxWindow = time.Hour
)

// serviceKind is the kind that declares a service's ports.
const serviceKind = "Service"

// externalNode is the graph node of callers outside the mesh (EdgeStats.From).
const externalNode = "unknown"

// Telemetry says whether the golden metrics could be read.
type Telemetry struct {
	Available bool   `json:"available"`
	Error     string `json:"error,omitempty"`
}

// Node is one service of the graph.
type Node struct {
	// ID is "name.namespace", as edges name services.
	ID        string `json:"id"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// External marks the callers outside the mesh.
	External bool `json:"external,omitempty"`
	// Declared says a Service resource exists for it.
	Declared bool `json:"declared"`
	// Instances counts its registered workloads, Ready those ready.
	Instances int           `json:"instances"`
	Ready     int           `json:"ready"`
	Versions  []string      `json:"versions,omitempty"`
	Golden    client.Golden `json:"golden"`
	Health    string        `json:"health"`
}

// Edge is the calls from one service to another.
type Edge struct {
	From   string        `json:"from"`
	To     string        `json:"to"`
	Golden client.Golden `json:"golden"`
	Health string        `json:"health"`
}

// Graph is GET /dashboard/api/graph.
type Graph struct {
	At        time.Time `json:"at"`
	Window    string    `json:"window"`
	Telemetry Telemetry `json:"telemetry"`
	Nodes     []Node    `json:"nodes"`
	Edges     []Edge    `json:"edges"`
}

// graph answers GET /dashboard/api/graph[?window=30s].
func (d *Dashboard) graph(w http.ResponseWriter, r *http.Request) {
	window, err := d.window(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	g, err := d.buildGraph(r.Context(), window)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (d *Dashboard) buildGraph(ctx context.Context, window time.Duration) (*Graph, error) {
	services, err := d.opts.Resources.List(ctx, serviceKind, "")
	if err != nil {
		return nil, fmt.Errorf("dashboard: list services: %w", err)
	}
	workloads, err := d.opts.Workloads.ListWorkloads(ctx, "", "")
	if err != nil {
		return nil, fmt.Errorf("dashboard: list workloads: %w", err)
	}
	stats, tel := d.stats(window)

	g := &Graph{At: time.Now().UTC(), Window: window.String(), Telemetry: tel, Nodes: []Node{}, Edges: []Edge{}}
	nodes := map[string]*Node{}
	node := func(id string) *Node {
		if n, ok := nodes[id]; ok {
			return n
		}
		n := &Node{ID: id}
		if id == externalNode {
			n.Name, n.External = "outside the mesh", true
		} else {
			n.Name, n.Namespace = splitID(id)
		}
		nodes[id] = n
		return n
	}
	for _, o := range services {
		node(serviceID(o.Metadata.Namespace, o.Metadata.Name)).Declared = true
	}
	for _, wl := range workloads {
		n := node(serviceID(wl.GetNamespace(), wl.GetService()))
		n.Instances++
		if wl.GetReady() {
			n.Ready++
		}
		if v := wl.GetVersion(); v != "" && !slices.Contains(n.Versions, v) {
			n.Versions = append(n.Versions, v)
		}
	}
	if stats != nil {
		for _, s := range stats.Services {
			n := node(serviceID(s.Namespace, s.Name))
			n.Golden = s.Golden
			for _, v := range s.Versions {
				if !slices.Contains(n.Versions, v) {
					n.Versions = append(n.Versions, v)
				}
			}
		}
		for _, e := range stats.Edges {
			if e.From == "" || e.To == "" {
				continue
			}
			node(e.From)
			node(e.To)
			g.Edges = append(g.Edges, Edge{From: e.From, To: e.To, Golden: e.Golden, Health: health(e.Golden)})
		}
	}
	for _, n := range nodes {
		slices.Sort(n.Versions)
		n.Health = health(n.Golden)
		if n.Instances > 0 && n.Ready == 0 {
			n.Health = HealthFailing
		}
		g.Nodes = append(g.Nodes, *n)
	}
	slices.SortFunc(g.Nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(g.Edges, func(a, b Edge) int { return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To)) })
	return g, nil
}

// stats reads the golden metrics, saying why when it cannot.
func (d *Dashboard) stats(window time.Duration) (*client.Stats, Telemetry) {
	if d.opts.Stats == nil {
		return nil, Telemetry{Error: "this control plane collects no telemetry"}
	}
	s, err := d.opts.Stats.Stats(window)
	if err != nil {
		d.opts.Log.Warn("dashboard: cannot read telemetry", "err", err)
		return nil, Telemetry{Error: err.Error()}
	}
	if s == nil {
		return nil, Telemetry{Error: "no telemetry yet"}
	}
	return s, Telemetry{Available: true}
}

// window reads ?window=, a duration within [minWindow, maxWindow].
func (d *Dashboard) window(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("window")
	if v == "" {
		return d.opts.Window, nil
	}
	w, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("window: %q is not a duration such as \"30s\"", v)
	}
	if w < minWindow || w > maxWindow {
		return 0, fmt.Errorf("window: %s is outside [%s, %s]", v, minWindow, maxWindow)
	}
	return w, nil
}

// health classifies golden metrics by success rate.
func health(g client.Golden) string {
	switch {
	case g.Requests <= 0 && (g.TCPOpen > 0 || g.TCPConnections > 0):
		// Opaque TCP has no status to judge: connections that stay up
		// are as healthy as it can tell.
		return HealthHealthy
	case g.SuccessRate == nil || g.Requests <= 0:
		return HealthIdle
	case *g.SuccessRate >= healthyRate:
		return HealthHealthy
	case *g.SuccessRate >= degradedRate:
		return HealthDegraded
	}
	return HealthFailing
}

// serviceID names a service as telemetry edges do: "name.namespace".
func serviceID(namespace, name string) string {
	if namespace == "" {
		namespace = v1alpha1.DefaultNamespace
	}
	return name + "." + namespace
}

// splitID is serviceID's inverse. Names are DNS labels, so the first dot
// ends the name.
func splitID(id string) (name, namespace string) {
	name, namespace, ok := strings.Cut(id, ".")
	if !ok {
		return id, v1alpha1.DefaultNamespace
	}
	return name, namespace
}
