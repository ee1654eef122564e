package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/controlplane/promsd"
)

type prometheusConfigOptions struct {
	control        string
	sd             string
	fileSD         string
	once           bool
	scrapeInterval time.Duration
	refresh        time.Duration
}

func newPrometheusConfigCmd() *cobra.Command {
	o := &prometheusConfigOptions{}
	cmd := &cobra.Command{
		Use:   "prometheus-config",
		Short: "Print a Prometheus scrape configuration that finds every proxy",
		Long: `Print a Prometheus scrape configuration for the mesh: every registered
proxy's admin port (its /metrics) and the control plane's own metrics.

With --sd http (the default) Prometheus asks the control plane's metrics port
(--control, 15014) for targets: ` + promsd.Path + ` answers in the http_sd
format, labelled with each proxy's service, namespace, version and workload.

With --file-sd FILE the configuration uses file_sd instead, and the command
keeps FILE up to date from the control plane every --refresh until it is
interrupted (--once writes it once and exits), for a Prometheus that cannot
reach the control plane's metrics port itself.`,
		Example: `  weft prometheus-config > prometheus.yml
  weft prometheus-config --control 10.0.0.5:15014 --scrape-interval 5s
  weft prometheus-config --file-sd /etc/prometheus/weft.json > prometheus.yml`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.fileSD != "" {
				o.sd = "file"
			}
			switch o.sd {
			case "http":
			case "file":
				if o.fileSD == "" {
					return usagef("--sd file needs --file-sd FILE")
				}
			default:
				return usagef("--sd %q: must be http or file", o.sd)
			}
			if _, _, err := net.SplitHostPort(o.control); err != nil {
				return usagef("--control %q: want host:port of the control plane's metrics port", o.control)
			}
			if o.scrapeInterval <= 0 || o.refresh <= 0 {
				return usagef("--scrape-interval and --refresh must be positive")
			}
			if err := writePrometheusConfig(cmd.OutOrStdout(), o); err != nil {
				return err
			}
			if o.sd != "file" {
				return nil
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return syncFileSD(ctx, o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.control, "control", "127.0.0.1:15014", "the control plane's metrics address (weft control --dashboard-addr)")
	f.StringVar(&o.sd, "sd", "http", "service discovery: http (Prometheus asks the control plane) or file")
	f.StringVar(&o.fileSD, "file-sd", "", "write targets to this file for file_sd, and keep it current (implies --sd file)")
	f.BoolVar(&o.once, "once", false, "with --file-sd, write the file once and exit")
	f.DurationVar(&o.scrapeInterval, "scrape-interval", 15*time.Second, "how often Prometheus scrapes each target")
	f.DurationVar(&o.refresh, "refresh", 30*time.Second, "how often targets are refreshed")
	return cmd
}

var prometheusConfigTemplate = template.Must(template.New("prometheus").Parse(`# Prometheus scrape configuration for the Weft mesh (weft prometheus-config).
# Targets carry job ("{{.JobProxies}}" or "{{.JobControlPlane}}"), and for
# proxies service, namespace, version and workload.
global:
  scrape_interval: {{.ScrapeInterval}}
  evaluation_interval: {{.ScrapeInterval}}
scrape_configs:
  - job_name: weft
    metrics_path: /metrics
{{- if eq .SD "http"}}
    http_sd_configs:
      - url: http://{{.Control}}{{.TargetsPath}}
        refresh_interval: {{.Refresh}}
{{- else}}
    file_sd_configs:
      - files: ['{{.File}}']
        refresh_interval: {{.Refresh}}
{{- end}}
`))

func writePrometheusConfig(w io.Writer, o *prometheusConfigOptions) error {
	return prometheusConfigTemplate.Execute(w, map[string]string{
		"JobProxies": promsd.JobProxies, "JobControlPlane": promsd.JobControlPlane,
		"ScrapeInterval": promDuration(o.scrapeInterval), "Refresh": promDuration(o.refresh),
		"SD": o.sd, "Control": o.control, "TargetsPath": promsd.Path, "File": strings.ReplaceAll(o.fileSD, "'", "''"),
	})
}

// promDuration prints d as Prometheus durations are written: "15s", "1m30s", "500ms".
func promDuration(d time.Duration) string {
	if d%time.Second != 0 {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	s := int64(d / time.Second)
	var b strings.Builder
	if h := s / 3600; h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m := s / 60 % 60; m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if sec := s % 60; sec > 0 || b.Len() == 0 {
		fmt.Fprintf(&b, "%ds", sec)
	}
	return b.String()
}

// syncFileSD copies the control plane's targets to the file_sd file, once
// or every refresh until ctx ends. A failed refresh keeps the last file.
func syncFileSD(ctx context.Context, o *prometheusConfigOptions, errw io.Writer) error {
	hc := &http.Client{Timeout: 10 * time.Second}
	sync := func() error {
		groups, err := fetchTargets(ctx, hc, o.control)
		if err != nil {
			return err
		}
		return promsd.WriteGroups(o.fileSD, groups)
	}
	if err := sync(); err != nil {
		if o.once {
			return err
		}
		fmt.Fprintf(errw, "weft prometheus-config: %v (retrying every %s)\n", err, o.refresh)
	}
	if o.once {
		return nil
	}
	t := time.NewTicker(o.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := sync(); err != nil && ctx.Err() == nil {
				fmt.Fprintf(errw, "weft prometheus-config: %v\n", err)
			}
		}
	}
}

// fetchTargets reads the control plane's http_sd targets.
func fetchTargets(ctx context.Context, hc *http.Client, control string) ([]promsd.Group, error) {
	url := "http://" + control + promsd.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return nil, fmt.Errorf("targets: GET %s: %s: %s", url, res.Status, strings.TrimSpace(string(b)))
	}
	var groups []promsd.Group
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<20)).Decode(&groups); err != nil {
		return nil, fmt.Errorf("targets: GET %s: %w", url, err)
	}
	return groups, nil
}
