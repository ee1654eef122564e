package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
)

func newDeleteCmd(root *rootOptions) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "delete KIND NAME",
		Short: "Delete a resource",
		Long: `Delete one mesh resource by kind and name. Without -n the namespace is
"default"; cluster-scoped kinds such as Mesh have none.`,
		Example: `  weft delete service payments
  weft delete route checkout -n shop`,
		Args: argsBetween(2, 2, "KIND and NAME"),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return kindNames(false), cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if isWorkloads(args[0]) {
				return usagef("workloads are registered by their proxies and cannot be deleted; stop the proxy instead")
			}
			kind, ok := resolveKind(args[0])
			if !ok {
				return unknownKind(args[0], false)
			}
			ns := namespace
			switch {
			case !kind.Namespaced && ns != "":
				return usagef("%s is cluster-scoped: it has no namespace, drop -n", kind.Name)
			case kind.Namespaced && ns == "":
				ns = defaultNamespace
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), kind.Name, ns, args[1]); err != nil {
				return err
			}
			printResult(cmd.OutOrStdout(), client.ApplyResult{
				Kind: strings.ToLower(kind.Name), Namespace: ns, Name: args[1], Action: "deleted",
			})
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", `namespace (default "default")`)
	return cmd
}
