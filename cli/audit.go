package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
)

func newAuditCmd(root *rootOptions) *cobra.Command {
	var (
		limit  int
		output string
		diff   bool
	)
	cmd := &cobra.Command{
		Use:   "audit [--limit N] [--diff] [-o table|json|yaml]",
		Short: "Show the audit log: who changed what through the API, and when",
		Long: `Show the newest entries of the control plane's audit log, newest first: every
apply, delete, join token and credential change, with the credential that made
it. --diff shows each object's change as a unified diff of its YAML; -o json
and -o yaml always include it. The log is kept in etcd, shared by every
replica, and bounded by count and age.`,
		Example: `  weft audit
  weft audit --limit 5 --diff`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := parseFormat(output)
			if err != nil {
				return err
			}
			if limit < 1 {
				return usagef("--limit must be at least 1")
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			entries, err := c.Audit(cmd.Context(), limit)
			if err != nil {
				return err
			}
			switch format {
			case formatJSON:
				return writeIndentedJSON(cmd.OutOrStdout(), client.AuditList{Items: entries})
			case formatYAML:
				return writeYAML(cmd.OutOrStdout(), client.AuditList{Items: entries})
			}
			if len(entries) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No audit entries found.")
				return nil
			}
			if diff {
				return printAuditDiffs(cmd.OutOrStdout(), entries)
			}
			return printAudit(cmd.OutOrStdout(), entries)
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "how many entries to show, newest first")
	cmd.Flags().BoolVar(&diff, "diff", false, "show each change's diff")
	cmd.Flags().StringVarP(&output, "output", "o", string(formatTable), "output format: table, yaml or json")
	return cmd
}

func printAudit(w io.Writer, entries []client.AuditEntry) error {
	tw := newTable(w)
	writeRow(tw, []string{"TIME", "WHO", "ROLE", "ACTION", "OBJECT", "RESULT"})
	for _, e := range entries {
		for _, c := range e.Changes {
			writeRow(tw, []string{e.Time.UTC().Format(time.RFC3339), actorOf(e.Who), orDash(e.Who.Role), e.Action, itemRef(c), c.Result})
		}
	}
	return tw.Flush()
}

func printAuditDiffs(w io.Writer, entries []client.AuditEntry) error {
	for i, e := range entries {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s  %s by %s (%s)\n", e.Time.UTC().Format(time.RFC3339), e.Action, actorOf(e.Who), orDash(e.Who.Role))
		for _, c := range e.Changes {
			fmt.Fprintf(w, "  %s %s\n", itemRef(c), c.Result)
			if c.Diff == "" {
				continue
			}
			for _, line := range strings.Split(strings.TrimSuffix(c.Diff, "\n"), "\n") {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
	}
	return nil
}

// actorOf names a credential as "name/id".
func actorOf(a client.AuditActor) string {
	if a.Name == "" {
		return orDash(a.CredentialID)
	}
	return a.Name + "/" + a.CredentialID
}

func itemRef(c client.AuditItem) string {
	if c.Namespace == "" {
		return c.Kind + " " + c.Name
	}
	return c.Kind + " " + c.Namespace + "/" + c.Name
}
