package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/v1alpha1"
)

type getOptions struct {
	namespace     string
	allNamespaces bool
	output        string
}

func newGetCmd(root *rootOptions) *cobra.Command {
	opts := &getOptions{}
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "Show resources or registered workloads",
		Long: `Show mesh resources of one kind, or one resource by name.

KIND is a resource kind (singular, plural or short alias), or 'workloads' for
the workloads registered with the control plane; for workloads, NAME filters
by service. Without -n the namespace is "default"; -A shows every namespace.`,
		Example: `  weft get services
  weft get service payments -o yaml
  weft get workloads -A
  weft get workloads payments -n shop`,
		Args: argsBetween(1, 2, "KIND and an optional NAME"),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return kindNames(true), cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return opts.run(cmd, root, args)
		},
	}
	cmd.Flags().StringVarP(&opts.namespace, "namespace", "n", "", `namespace (default "default")`)
	cmd.Flags().BoolVarP(&opts.allNamespaces, "all-namespaces", "A", false, "show every namespace")
	cmd.Flags().StringVarP(&opts.output, "output", "o", string(formatTable), "output format: table, yaml or json")
	return cmd
}

func (o *getOptions) run(cmd *cobra.Command, root *rootOptions, args []string) error {
	format, err := parseFormat(o.output)
	if err != nil {
		return err
	}
	if o.allNamespaces && o.namespace != "" {
		return usagef("-n and -A cannot be combined")
	}
	name := ""
	if len(args) == 2 {
		name = args[1]
	}
	namespace := o.namespace
	if namespace == "" && !o.allNamespaces {
		namespace = defaultNamespace
	}
	out := cmd.OutOrStdout()

	if isWorkloads(args[0]) {
		c, err := root.client()
		if err != nil {
			return err
		}
		ws, err := c.Workloads(cmd.Context(), namespace, name)
		if err != nil {
			return err
		}
		if len(ws) == 0 && format == formatTable {
			fmt.Fprintln(cmd.ErrOrStderr(), noneFound("workloads", namespace, name))
			return nil
		}
		return printWorkloads(out, format, ws)
	}

	kind, ok := resolveKind(args[0])
	if !ok {
		return unknownKind(args[0], true)
	}
	if !kind.Namespaced {
		if o.namespace != "" {
			return usagef("%s is cluster-scoped: it has no namespace, drop -n", kind.Name)
		}
		namespace = ""
	}
	c, err := root.client()
	if err != nil {
		return err
	}
	if name != "" {
		if o.allNamespaces {
			return usagef("a resource is named within one namespace: use -n instead of -A")
		}
		obj, err := c.Get(cmd.Context(), kind.Name, namespace, name)
		if err != nil {
			return err
		}
		if kind.Name == v1alpha1.RouteKind.Name {
			statuses := routeStatuses(cmd.Context(), c, namespace, cmd.ErrOrStderr())
			return printRoutes(out, format, []*v1alpha1.Object{obj}, statuses, true)
		}
		if policyKinds[kind.Name] {
			statuses := policyStatuses(cmd.Context(), c, kind.Name, namespace, cmd.ErrOrStderr())
			return printPolicies(out, format, kind, []*v1alpha1.Object{obj}, statuses, true)
		}
		return printObject(out, format, kind, obj)
	}
	objs, err := c.List(cmd.Context(), kind.Name, namespace)
	if err != nil {
		return err
	}
	if len(objs) == 0 && format == formatTable {
		fmt.Fprintln(cmd.ErrOrStderr(), noneFound(strings.ToLower(kind.Plural), namespace, ""))
		return nil
	}
	if kind.Name == v1alpha1.RouteKind.Name {
		statuses := routeStatuses(cmd.Context(), c, namespace, cmd.ErrOrStderr())
		return printRoutes(out, format, objs, statuses, false)
	}
	if policyKinds[kind.Name] {
		statuses := policyStatuses(cmd.Context(), c, kind.Name, namespace, cmd.ErrOrStderr())
		return printPolicies(out, format, kind, objs, statuses, false)
	}
	return printObjects(out, format, kind, objs)
}

func noneFound(what, namespace, service string) string {
	msg := "No " + what + " found"
	if service != "" {
		msg += " for service " + service
	}
	if namespace != "" {
		msg += " in namespace " + namespace
	}
	return msg + "."
}
