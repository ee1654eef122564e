package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newTokenCmd(root *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage join tokens",
		Long: `Manage join tokens. A proxy proves its identity to the control plane once
with a join token, bound to one service and namespace and expiring, and gets
its first certificate in exchange.`,
		Args: argsBetween(0, 0, "a subcommand such as 'create'"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTokenCreateCmd(root))
	return cmd
}

func newTokenCreateCmd(root *rootOptions) *cobra.Command {
	var (
		service, namespace string
		ttl                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create --service NAME [--namespace NS] [--ttl 24h]",
		Short: "Create a join token for a service's proxy",
		Long: `Create a join token for the proxy of one service. The token alone goes to
standard output, so it can be captured; its ID and expiry go to standard error.`,
		Example: `  weft token create --service payments
  TOKEN=$(weft token create --service payments --namespace shop --ttl 1h)`,
		Args: argsBetween(0, 0, "no arguments (name the service with --service)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if service == "" {
				return usagef("--service is required: the service whose proxy will use the token")
			}
			if ttl <= 0 {
				return usagef("--ttl must be positive, such as 1h or 24h")
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			tok, err := c.CreateToken(cmd.Context(), service, namespace, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s for service %s in namespace %s expires %s\n",
				tok.ID, service, namespace, tok.ExpiresAt.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&service, "service", "", "service the token is bound to (required)")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", defaultNamespace, "namespace of the service")
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	return cmd
}
