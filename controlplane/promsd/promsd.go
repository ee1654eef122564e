// Package promsd tells Prometheus where to scrape the mesh: every
// registered proxy's admin port and the control plane itself, in the
// format of Prometheus's HTTP service discovery (http_sd_configs) and file
// service discovery (file_sd_configs), which are the same JSON.
package promsd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/weftmesh/weft/api/meshv1"
)

// Lister lists registered workloads ("" lists every namespace and service).
type Lister interface {
	ListWorkloads(ctx context.Context, namespace, service string) ([]*meshv1.Workload, error)
}

// Group is one target group: targets sharing labels.
type Group struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// Job names, as the "job" label of each group.
const (
	JobProxies      = "weft-proxies"
	JobControlPlane = "weft-control-plane"
)

// Targets returns a group per proxy with an admin address, labelled with
// its workload, service, namespace and version, then the control plane
// at self (when not "").
func Targets(ctx context.Context, l Lister, self string) ([]Group, error) {
	ws, err := l.ListWorkloads(ctx, "", "")
	if err != nil {
		return nil, fmt.Errorf("promsd: list workloads: %w", err)
	}
	groups := []Group{}
	for _, w := range ws {
		if w.GetAdminAddress() == "" {
			continue
		}
		version := w.GetVersion()
		if version == "" {
			version = w.GetLabels()["version"]
		}
		groups = append(groups, Group{
			Targets: []string{w.GetAdminAddress()},
			Labels: map[string]string{
				"job": JobProxies, "workload": w.GetId(),
				"service": w.GetService(), "namespace": w.GetNamespace(), "version": version,
			},
		})
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Labels["workload"] < groups[j].Labels["workload"] })
	if self != "" {
		groups = append(groups, Group{Targets: []string{self}, Labels: map[string]string{"job": JobControlPlane}})
	}
	return groups, nil
}

// Path is where the control plane's metrics port serves Handler.
const Path = "/prometheus/targets"

// Handler serves Targets as http_sd JSON. The control plane's own target is
// the address the request was sent to, which Prometheus can reach.
func Handler(l Lister) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		groups, err := Targets(ctx, l, r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(groups)
	})
}

// WriteFile writes Targets to path for file_sd, atomically (a rename), so
// that Prometheus never reads half a file.
func WriteFile(ctx context.Context, l Lister, self, path string) error {
	groups, err := Targets(ctx, l, self)
	if err != nil {
		return err
	}
	return WriteGroups(path, groups)
}

// WriteGroups writes groups to path for file_sd, atomically.
func WriteGroups(path string, groups []Group) error {
	if groups == nil {
		groups = []Group{}
	}
	b, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return fmt.Errorf("promsd: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".weft-sd-*.json")
	if err != nil {
		return fmt.Errorf("promsd: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("promsd: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("promsd: write %s: %w", tmp.Name(), err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("promsd: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("promsd: %w", err)
	}
	return nil
}

// Run rewrites path every interval until ctx ends. A failed write is
// reported to onError and retried at the next tick; the last good file
// stays.
func Run(ctx context.Context, l Lister, self, path string, interval time.Duration, onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := WriteFile(ctx, l, self, path); err != nil && ctx.Err() == nil && onError != nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
