package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/agent"
	"github.com/weftmesh/weft/api/xdsmeta"
)

func newBootstrapCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Write bootstrap files for xDS clients of the mesh",
		Args:  argsBetween(0, 0, "a subcommand such as 'grpc'"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newBootstrapGRPCCmd())
	return cmd
}

// grpcBootstrap are the inputs of a proxyless gRPC bootstrap file.
type grpcBootstrap struct {
	service, namespace, version string
	control                     string
	// certs is the directory 'weft agent --out' writes the SVID files to.
	certs string
	// serve is the listening address of the workload's xDS gRPC server, if any.
	serve string
	// name tells the node apart when it only calls (no serve).
	name string
	// refresh is how often gRPC re-reads the SVID files.
	refresh string
}

func newBootstrapGRPCCmd() *cobra.Command {
	var (
		b   grpcBootstrap
		out string
	)
	cmd := &cobra.Command{
		Use:   "grpc --service S [--namespace NS] --control ADDR --certs DIR [--serve ADDR] [--out FILE]",
		Short: "Write the bootstrap of a proxyless gRPC application (GRPC_XDS_BOOTSTRAP)",
		Long: `Write the xDS bootstrap of a proxyless gRPC application: grpc-go with
_ "google.golang.org/grpc/xds" reads it from the file named by GRPC_XDS_BOOTSTRAP.
Its channels then resolve xds:///SERVICE (in the node's namespace) or
xds:///SERVICE.NAMESPACE through the control plane, and xds.NewGRPCServer serves
with the mesh's mTLS and AccessPolicies.

The control plane is reached with mTLS ("tls" channel credentials) using the SVID
files 'weft agent --out DIR' keeps fresh, and the mesh's certificates come from the
same files through the file_watcher certificate provider "weft". --serve names the
address the application's xDS server listens on (as 'weft agent --serve').`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := b.render()
			if err != nil {
				return usagef("%v", err)
			}
			if out == "" || out == "-" {
				_, err := cmd.OutOrStdout().Write(doc)
				return err
			}
			if err := os.WriteFile(out, doc, 0o644); err != nil {
				return fmt.Errorf("bootstrap: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s; run the application with GRPC_XDS_BOOTSTRAP=%s\n", out, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&b.service, "service", "", "service the application belongs to")
	f.StringVar(&b.namespace, "namespace", "default", "namespace of the service")
	f.StringVar(&b.version, "version", "", "version label of the workload")
	f.StringVar(&b.control, "control", "", "control plane gRPC address (host:port)")
	f.StringVar(&b.certs, "certs", "", "directory of the SVID files written by 'weft agent --out'")
	f.StringVar(&b.serve, "serve", "", "address the application's xDS gRPC server listens on (IP:port)")
	f.StringVar(&b.name, "name", "client", "node name of an application that only calls (without --serve)")
	f.StringVar(&b.refresh, "refresh", "5s", "how often gRPC re-reads the SVID files")
	f.StringVar(&out, "out", "", "file to write (default standard output)")
	return cmd
}

// render builds the bootstrap JSON (grpc-go's internal/xds/bootstrap format,
// gRFCs A27, A29, A36 and A65).
func (b grpcBootstrap) render() ([]byte, error) {
	switch {
	case b.service == "":
		return nil, fmt.Errorf("--service is required")
	case b.control == "":
		return nil, fmt.Errorf("--control is required")
	case b.certs == "":
		return nil, fmt.Errorf("--certs is required (the directory 'weft agent --out' writes)")
	}
	if _, _, err := net.SplitHostPort(b.control); err != nil {
		return nil, fmt.Errorf("--control %q: %w", b.control, err)
	}
	certs, err := filepath.Abs(b.certs)
	if err != nil {
		return nil, fmt.Errorf("--certs: %w", err)
	}
	serving := b.name
	if b.serve != "" {
		if _, _, err := net.SplitHostPort(b.serve); err != nil {
			return nil, fmt.Errorf("--serve %q: %w", b.serve, err)
		}
		serving = b.serve
	}
	files := map[string]string{
		"certificate_file":    filepath.Join(certs, agent.CertFile),
		"private_key_file":    filepath.Join(certs, agent.KeyFile),
		"ca_certificate_file": filepath.Join(certs, agent.BundleFile),
	}
	watcher := map[string]any{"refresh_interval": b.refresh}
	for k, v := range files {
		watcher[k] = v
	}
	node := xdsmeta.Node{
		ID:      xdsmeta.ProxylessNodeID(b.service, b.namespace, serving),
		Service: b.service, Namespace: b.namespace, Version: b.version, Inbound: b.serve, Proxyless: true,
	}.ToProto()
	doc := map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      b.control,
			"channel_creds":   []any{map[string]any{"type": "tls", "config": watcher}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{
			"id":       node.GetId(),
			"cluster":  node.GetCluster(),
			"metadata": node.GetMetadata().AsMap(),
		},
		"certificate_providers": map[string]any{
			xdsmeta.ProxylessCertificateProvider: map[string]any{"plugin_name": "file_watcher", "config": watcher},
		},
		"server_listener_resource_name_template": xdsmeta.ServerListenerTemplate,
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode bootstrap: %w", err)
	}
	return append(out, '\n'), nil
}
