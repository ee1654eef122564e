package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// errNoService is a service nothing knows of: no Service resource, no
// workload, no telemetry.
var errNoService = errors.New("dashboard: no such service")

// Port is one declared port of a service.
type Port struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// Instance is one registered workload of a service.
type Instance struct {
	ID         string            `json:"id"`
	Version    string            `json:"version,omitempty"`
	Address    string            `json:"address"`
	AppAddress string            `json:"appAddress,omitempty"`
	Ready      bool              `json:"ready"`
	Labels     map[string]string `json:"labels,omitempty"`
	// Golden and Error come from the workload's last scrape, if any.
	Golden *client.Golden `json:"golden,omitempty"`
	Error  string         `json:"error,omitempty"`
}

// Version is one version of a service and its instances.
type Version struct {
	Version   string `json:"version"`
	Instances int    `json:"instances"`
	Ready     int    `json:"ready"`
	// RPS and SuccessRate add up its instances' golden metrics.
	RPS         float64  `json:"rps"`
	SuccessRate *float64 `json:"successRate,omitempty"`
}

// Policy is one resource that governs a service (Route, DestinationPolicy,
// AccessPolicy, RequestAuth, RateLimit) and what became of it.
type Policy struct {
	client.PolicyStatus
	// Tracked says the control plane follows this kind to the proxies; for
	// the other kinds Phase only says whether the resource is valid.
	Tracked bool `json:"tracked"`
	// Summary says in a few words what it does.
	Summary string          `json:"summary"`
	Spec    json.RawMessage `json:"spec,omitempty"`
}

// Service is GET /dashboard/api/services/{namespace}/{name}.
type Service struct {
	At        time.Time      `json:"at"`
	Window    string         `json:"window"`
	Telemetry Telemetry      `json:"telemetry"`
	Namespace string         `json:"namespace"`
	Name      string         `json:"name"`
	Declared  bool           `json:"declared"`
	Ports     []Port         `json:"ports,omitempty"`
	Golden    *client.Golden `json:"golden,omitempty"`
	Health    string         `json:"health"`
	Instances []Instance     `json:"instances"`
	Versions  []Version      `json:"versions"`
	// Inbound are the calls it receives, Outbound those it makes.
	Inbound  []Edge `json:"inbound"`
	Outbound []Edge `json:"outbound"`
	// Policies are the resources that govern it, Route first.
	Policies []Policy `json:"policies"`
	// StatusError says why the status of Routes and policies is missing.
	StatusError string `json:"statusError,omitempty"`
}

// Phases of resources whose rollout the control plane does not track.
const (
	PhaseValid   = "Valid"
	PhaseInvalid = "Invalid"
)

// governingKinds are the kinds shown on a service's page, in order, and
// how each names the service it governs.
var governingKinds = []struct {
	kind    string
	service func(o *v1alpha1.Object) string
	summary func(o *v1alpha1.Object) string
}{
	{v1alpha1.RouteKind.Name, func(o *v1alpha1.Object) string {
		if s, ok := o.Spec.(*v1alpha1.RouteSpec); ok {
			return s.Service
		}
		return ""
	}, func(o *v1alpha1.Object) string {
		if s, ok := o.Spec.(*v1alpha1.RouteSpec); ok {
			return plural(len(s.Rules), "rule")
		}
		return ""
	}},
	{v1alpha1.DestinationPolicyKind.Name, namedAfter, func(o *v1alpha1.Object) string {
		s, ok := o.Spec.(*v1alpha1.DestinationPolicySpec)
		if !ok {
			return ""
		}
		out := plural(len(s.Subsets), "subset")
		if s.LoadBalancer.Type != "" {
			out += ", " + string(s.LoadBalancer.Type)
		}
		if s.ConnectionLimits != nil {
			out += ", connection limits"
		}
		if s.OutlierDetection != nil {
			out += ", outlier detection"
		}
		if s.HealthCheck != nil {
			out += ", health checks"
		}
		return out
	}},
	{v1alpha1.AccessPolicyKind.Name, func(o *v1alpha1.Object) string {
		if s, ok := o.Spec.(*v1alpha1.AccessPolicySpec); ok {
			return s.Service
		}
		return ""
	}, func(o *v1alpha1.Object) string {
		if s, ok := o.Spec.(*v1alpha1.AccessPolicySpec); ok {
			return fmt.Sprintf("%s, %s", cmp.Or(string(s.Action), string(v1alpha1.AccessAllow)), plural(len(s.Rules), "rule"))
		}
		return ""
	}},
	{v1alpha1.RequestAuthKind.Name, namedAfter, func(o *v1alpha1.Object) string {
		if s, ok := o.Spec.(*v1alpha1.RequestAuthSpec); ok {
			return fmt.Sprintf("%s, %s", plural(len(s.Issuers), "issuer"), plural(len(s.Rules), "rule"))
		}
		return ""
	}},
	{v1alpha1.RateLimitKind.Name, namedAfter, func(o *v1alpha1.Object) string {
		if s, ok := o.Spec.(*v1alpha1.RateLimitSpec); ok {
			return plural(len(s.Limits), "limit")
		}
		return ""
	}},
}

// namedAfter: DestinationPolicy, RequestAuth and RateLimit bear the name
// of the service they govern.
func namedAfter(o *v1alpha1.Object) string { return o.Metadata.Name }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// service answers GET /dashboard/api/services/{namespace}/{name}[?window=].
func (d *Dashboard) service(w http.ResponseWriter, r *http.Request) {
	window, err := d.window(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	if !isDNSLabel(name) || !isDNSLabel(ns) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s/%s is not a service name", ns, name))
		return
	}
	s, err := d.buildService(r.Context(), ns, name, window)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (d *Dashboard) buildService(ctx context.Context, ns, name string, window time.Duration) (*Service, error) {
	out := &Service{At: time.Now().UTC(), Window: window.String(), Namespace: ns, Name: name,
		Instances: []Instance{}, Versions: []Version{}, Inbound: []Edge{}, Outbound: []Edge{}, Policies: []Policy{}}
	id := serviceID(ns, name)
	known := false

	decls, err := d.opts.Resources.List(ctx, serviceKind, ns)
	if err != nil {
		return nil, fmt.Errorf("dashboard: list services: %w", err)
	}
	for _, o := range decls {
		if o.Metadata.Name != name {
			continue
		}
		known, out.Declared = true, true
		if spec, ok := o.Spec.(*v1alpha1.ServiceSpec); ok {
			for _, p := range spec.Ports {
				out.Ports = append(out.Ports, Port{Name: p.Name, Port: p.Port, Protocol: string(p.Protocol)})
			}
		}
	}
	workloads, err := d.opts.Workloads.ListWorkloads(ctx, ns, name)
	if err != nil {
		return nil, fmt.Errorf("dashboard: list workloads: %w", err)
	}
	known = known || len(workloads) > 0

	stats, tel := d.stats(window)
	out.Telemetry = tel
	scraped := map[string]client.WorkloadStats{}
	if stats != nil {
		for _, s := range stats.Services {
			if s.Namespace == ns && s.Name == name {
				g := s.Golden
				out.Golden, known = &g, true
			}
		}
		for _, e := range stats.Edges {
			if e.To == id {
				out.Inbound = append(out.Inbound, Edge{From: e.From, To: e.To, Golden: e.Golden, Health: health(e.Golden)})
			}
			if e.From == id {
				out.Outbound = append(out.Outbound, Edge{From: e.From, To: e.To, Golden: e.Golden, Health: health(e.Golden)})
			}
		}
		for _, ws := range stats.Workloads {
			if ws.Namespace == ns && ws.Service == name {
				scraped[ws.ID] = ws
			}
		}
	}
	known = known || len(out.Inbound) > 0 || len(out.Outbound) > 0
	if !known {
		return nil, fmt.Errorf("%w: %s/%s has no Service resource, no workload and no traffic", errNoService, ns, name)
	}

	out.Instances, out.Versions = instances(workloads, scraped)
	out.Health = HealthIdle
	if out.Golden != nil {
		out.Health = health(*out.Golden)
	}
	if len(out.Instances) > 0 && !slices.ContainsFunc(out.Instances, func(i Instance) bool { return i.Ready }) {
		out.Health = HealthFailing
	}
	out.Policies, out.StatusError, err = d.policies(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// instances pairs registered workloads with their scrapes, and sums them
// up by version.
func instances(workloads []*meshv1.Workload, scraped map[string]client.WorkloadStats) ([]Instance, []Version) {
	insts := make([]Instance, 0, len(workloads))
	byVersion := map[string]*Version{}
	var successes = map[string]float64{}
	for _, wl := range workloads {
		in := Instance{ID: wl.GetId(), Version: wl.GetVersion(), Address: wl.GetAddress(), AppAddress: wl.GetAppAddress(),
			Ready: wl.GetReady(), Labels: wl.GetLabels()}
		v := byVersion[in.Version]
		if v == nil {
			v = &Version{Version: in.Version}
			byVersion[in.Version] = v
		}
		v.Instances++
		if in.Ready {
			v.Ready++
		}
		if ws, ok := scraped[in.ID]; ok {
			g := ws.Golden
			in.Golden, in.Error = &g, ws.Error
			v.RPS += g.RPS
			if g.SuccessRate != nil {
				successes[in.Version] += *g.SuccessRate * g.Requests
				if v.SuccessRate == nil {
					v.SuccessRate = new(float64)
				}
				*v.SuccessRate += g.Requests // total requests, divided below
			}
		}
		insts = append(insts, in)
	}
	versions := make([]Version, 0, len(byVersion))
	for name, v := range byVersion {
		if v.SuccessRate != nil {
			if total := *v.SuccessRate; total > 0 {
				*v.SuccessRate = successes[name] / total
			} else {
				v.SuccessRate = nil
			}
		}
		versions = append(versions, *v)
	}
	slices.SortFunc(insts, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(versions, func(a, b Version) int { return cmp.Compare(a.Version, b.Version) })
	return insts, versions
}

// policies lists the resources that govern the service with their status.
// A status that cannot be read is reported in statusError, not as a failure
// of the page.
func (d *Dashboard) policies(ctx context.Context, ns, name string) (out []Policy, statusError string, err error) {
	type key struct{ kind, name string }
	statuses := map[key]client.PolicyStatus{}
	if d.opts.Statuses == nil {
		statusError = "this control plane does not report the status of Routes and policies"
	} else {
		routes, rerr := d.opts.Statuses.RouteStatuses(ctx, ns)
		policies, perr := d.opts.Statuses.PolicyStatuses(ctx, "", ns)
		if serr := cmp.Or(rerr, perr); serr != nil {
			d.opts.Log.Warn("dashboard: cannot read the status of Routes and policies", "err", serr)
			statusError = serr.Error()
		}
		for _, r := range routes {
			statuses[key{v1alpha1.RouteKind.Name, r.Name}] = client.PolicyStatus{
				Kind: v1alpha1.RouteKind.Name, Namespace: r.Namespace, Name: r.Name, Service: r.Service, Phase: r.Phase,
				Accepted: r.Accepted, Reason: r.Reason, Proxies: r.Proxies, Applied: r.Applied, Errors: r.Errors,
			}
		}
		for _, p := range policies {
			statuses[key{p.Kind, p.Name}] = p
		}
	}
	out = []Policy{}
	for _, gk := range governingKinds {
		objs, err := d.opts.Resources.List(ctx, gk.kind, ns)
		if err != nil {
			return nil, "", fmt.Errorf("dashboard: list %s: %w", gk.kind, err)
		}
		slices.SortFunc(objs, func(a, b *v1alpha1.Object) int { return cmp.Compare(a.Metadata.Name, b.Metadata.Name) })
		for _, o := range objs {
			if gk.service(o) != name {
				continue
			}
			p := Policy{Summary: gk.summary(o)}
			if st, ok := statuses[key{gk.kind, o.Metadata.Name}]; ok {
				p.PolicyStatus, p.Tracked = st, true
			} else {
				p.PolicyStatus = client.PolicyStatus{Kind: gk.kind, Namespace: o.Metadata.Namespace, Name: o.Metadata.Name,
					Service: name, Phase: PhaseValid, Accepted: true}
				if errs := o.Validate(); len(errs) > 0 {
					p.Phase, p.Accepted, p.Reason = PhaseInvalid, false, "invalid: "+errs[0].Error()
				}
			}
			if b, err := json.Marshal(o.Spec); err == nil {
				p.Spec = b
			}
			out = append(out, p)
		}
	}
	return out, statusError, nil
}
