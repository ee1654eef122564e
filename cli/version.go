package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
)

// Version is the version of this build of weft, set at link time:
//
//	go build -ldflags "-X github.com/weftmesh/weft/cli.Version=v0.1.0" ./cmd/weft
var Version = "dev"

func newVersionCmd(root *rootOptions) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client's and the control plane's versions",
		Long: `Print the version of this weft binary and, when the control plane is
reachable, the control plane's version and trust domain.`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Client: %s\n", Version)
			if clientOnly {
				return nil
			}
			c, err := root.client()
			if err == nil {
				var info client.VersionInfo
				if info, err = c.Version(cmd.Context()); err == nil {
					fmt.Fprintf(out, "Server: %s\n", info.Version)
					if info.TrustDomain != "" {
						fmt.Fprintf(out, "Trust domain: %s\n", info.TrustDomain)
					}
					return nil
				}
			}
			// The client's version is still useful without a control plane.
			fmt.Fprintf(cmd.ErrOrStderr(), "Server: unavailable: %v\n", err)
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print only the client's version")
	return cmd
}
