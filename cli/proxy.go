package cli

import (
	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/cli/proxycmd"
)

// newProxyCmd is `weft proxy`: the sidecar command that weft-proxy runs
// alone, presented as a cobra command.
func newProxyCmd() *cobra.Command { return cobraCommand(proxycmd.Proxy()) }

// cobraCommand presents a framework-free command, and its subcommands, as
// cobra commands.
func cobraCommand(c *proxycmd.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:           c.Use,
		Short:         c.Short,
		Long:          c.Long,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.Run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().AddFlagSet(c.Flags)
	for _, sub := range c.Subcommands {
		cmd.AddCommand(cobraCommand(sub))
	}
	return cmd
}
