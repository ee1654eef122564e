package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
)

func newCredentialCmd(root *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "credential",
		Aliases: []string{"credentials", "cred"},
		Short:   "Manage API credentials (who may call the control plane, and what they may do)",
		Long: `Manage API credentials: the bearer secrets with which the CLI calls the
control plane's API. Each has a role, as Kubernetes names its default roles:

  admin  everything: resources of every scope, join tokens, credentials, audit log
  edit   read, apply and delete namespaced resources, manage join tokens
  view   read only

An edit or view credential may be limited to namespaces with --namespace.
Only an admin credential manages credentials.`,
		Args: argsBetween(0, 0, "a subcommand: create, list or revoke"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCredentialCreateCmd(root), newCredentialListCmd(root), newCredentialRevokeCmd(root))
	return cmd
}

func newCredentialCreateCmd(root *rootOptions) *cobra.Command {
	var (
		role       string
		namespaces []string
		ttl        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create NAME --role admin|edit|view [--namespace NS]... [--ttl 720h]",
		Short: "Create an API credential",
		Long: `Create an API credential for NAME, who or what will hold it (it appears in
the audit log). The credential alone goes to standard output, so it can be
captured; it is shown once and never stored. Its ID goes to standard error.`,
		Example: `  weft credential create ci --role edit --namespace shop
  CRED=$(weft credential create dashboards --role view --ttl 720h)`,
		Args: argsBetween(1, 1, "the credential's NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return usagef("--role is required: admin, edit or view")
			}
			if ttl < 0 {
				return usagef("--ttl must not be negative")
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			req := client.CredentialRequest{Name: args[0], Role: role, Namespaces: namespaces}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			resp, err := c.CreateCredential(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Credential)
			fmt.Fprintf(cmd.ErrOrStderr(), "credential %s for %s: %s, %s\n", resp.ID, resp.Name, scopeOf(resp.CredentialInfo), expiryOf(resp.CredentialInfo))
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "admin, edit or view (required)")
	cmd.Flags().StringSliceVarP(&namespaces, "namespace", "n", nil, "limit an edit or view credential to this namespace (repeat, or separate with commas)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the credential is valid (default: no expiry)")
	return cmd
}

func newCredentialListCmd(root *rootOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list [-o table|json|yaml]",
		Short: "List API credentials, without their secrets",
		Args:  argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := parseFormat(output)
			if err != nil {
				return err
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			creds, err := c.Credentials(cmd.Context())
			if err != nil {
				return err
			}
			return printCredentials(cmd.OutOrStdout(), format, creds)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", string(formatTable), "output format: table, yaml or json")
	return cmd
}

func printCredentials(w io.Writer, format outputFormat, creds []client.CredentialInfo) error {
	switch format {
	case formatJSON:
		return writeIndentedJSON(w, client.CredentialList{Items: creds})
	case formatYAML:
		return writeYAML(w, client.CredentialList{Items: creds})
	}
	tw := newTable(w)
	writeRow(tw, []string{"ID", "NAME", "ROLE", "NAMESPACES", "CREATED", "EXPIRES"})
	for _, c := range creds {
		expires := "never"
		if !c.ExpiresAt.IsZero() {
			expires = c.ExpiresAt.UTC().Format(time.RFC3339)
		}
		writeRow(tw, []string{c.ID, c.Name, c.Role, orAll(c.Namespaces), c.CreatedAt.UTC().Format(time.RFC3339), expires})
	}
	return tw.Flush()
}

func newCredentialRevokeCmd(root *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API credential",
		Long: `Revoke an API credential by the ID that 'weft credential list' shows. Every
control plane replica refuses it from then on. A credential cannot revoke
itself: use another admin credential.`,
		Args: argsBetween(1, 1, "the credential's ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := root.client()
			if err != nil {
				return err
			}
			info, err := c.RevokeCredential(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "credential %s (%s) revoked\n", info.ID, info.Name)
			return nil
		},
	}
}

func scopeOf(c client.CredentialInfo) string {
	if c.Role == "admin" {
		return "admin"
	}
	return c.Role + " in " + orAll(c.Namespaces)
}

func expiryOf(c client.CredentialInfo) string {
	if c.ExpiresAt.IsZero() {
		return "never expires"
	}
	return "expires " + c.ExpiresAt.UTC().Format(time.RFC3339)
}

// orAll lists namespaces, or says that none means every one.
func orAll(namespaces []string) string {
	if len(namespaces) == 0 {
		return "all"
	}
	return strings.Join(namespaces, ",")
}
