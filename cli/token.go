package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
)

func newTokenCmd(root *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage join tokens",
		Long: `Manage join tokens. A proxy proves its identity to the control plane once
with a join token, bound to one service and namespace and expiring, and gets
its first certificate in exchange.`,
		Args: argsBetween(0, 0, "a subcommand: create, list or revoke"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTokenCreateCmd(root), newTokenListCmd(root), newTokenRevokeCmd(root))
	return cmd
}

func newTokenListCmd(root *rootOptions) *cobra.Command {
	var namespace, output string
	cmd := &cobra.Command{
		Use:   "list [-n NS] [-o table|json|yaml]",
		Short: "List join tokens that have not expired long ago",
		Long: `List join tokens, oldest first: their IDs, services, namespaces and expiry.
The tokens themselves are never stored, so they cannot be shown again.
Without -n every namespace the credential may see is listed.`,
		Example: `  weft token list
  weft token list -n shop -o json`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := parseFormat(output)
			if err != nil {
				return err
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			toks, err := c.Tokens(cmd.Context(), namespace)
			if err != nil {
				return err
			}
			return printTokens(cmd.OutOrStdout(), cmd.ErrOrStderr(), format, toks, time.Now())
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "only the tokens of this namespace")
	cmd.Flags().StringVarP(&output, "output", "o", string(formatTable), "output format: table, yaml or json")
	return cmd
}

func printTokens(w, errw io.Writer, format outputFormat, toks []client.TokenInfo, now time.Time) error {
	switch format {
	case formatJSON:
		return writeIndentedJSON(w, client.TokenList{Items: toks})
	case formatYAML:
		return writeYAML(w, client.TokenList{Items: toks})
	}
	if len(toks) == 0 {
		fmt.Fprintln(errw, "No join tokens found.")
		return nil
	}
	tw := newTable(w)
	writeRow(tw, []string{"ID", "SERVICE", "NAMESPACE", "EXPIRES", "STATUS"})
	for _, t := range toks {
		state := "valid"
		if now.After(t.ExpiresAt) {
			state = "expired"
		}
		writeRow(tw, []string{t.ID, t.Service, t.Namespace, t.ExpiresAt.UTC().Format(time.RFC3339), state})
	}
	return tw.Flush()
}

func newTokenRevokeCmd(root *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a join token",
		Long: `Revoke a join token by the ID that 'weft token create' and 'weft token list'
show. Every control plane replica refuses it from then on; proxies that
already joined with it keep their certificates.`,
		Example: `  weft token revoke 5f0c9e7d2b1a48c6a1e3f0b2c4d6e8fa`,
		Args:    argsBetween(1, 1, "the token's ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := root.client()
			if err != nil {
				return err
			}
			info, err := c.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s for service %s in namespace %s revoked\n", info.ID, info.Service, info.Namespace)
			return nil
		},
	}
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
