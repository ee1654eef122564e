package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
)

func newCACmd(root *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Inspect and rotate the mesh CA",
		Long: `Inspect and rotate the mesh certificate authority: its roots and intermediates,
their expiry, and a root rotation that re-issues every proxy's SVID under a new root
without interrupting traffic.`,
		Args: argsBetween(0, 0, "a subcommand such as 'status' or 'rotate'"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCAStatusCmd(root), newCARotateCmd(root))
	return cmd
}

func newCAStatusCmd(root *rootOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status [-o table|json]",
		Short: "Show the CA's roots, intermediates, expiries and rotation",
		Long: `Show the trust bundle (the root that signs now first), the intermediates, when
each expires, how many SVIDs on record each signed, the current or last root rotation,
and warnings: a CA certificate with less than a third of its lifetime or 30 days left,
SVIDs still signed by a retired root, workloads that have not re-issued.`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := parseFormat(output)
			if err != nil {
				return err
			}
			if format == formatYAML {
				return usagef("-o yaml is not supported here; use table or json")
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			st, err := c.CAStatus(cmd.Context())
			if err != nil {
				return err
			}
			if format == formatJSON {
				return writeIndentedJSON(cmd.OutOrStdout(), st)
			}
			printCAStatus(cmd.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", string(formatTable), "output format: table or json")
	return cmd
}

func newCARotateCmd(root *rootOptions) *cobra.Command {
	var (
		propagation, grace, timeout time.Duration
		noWait                      bool
	)
	cmd := &cobra.Command{
		Use:   "rotate [--propagation 30s] [--grace 15m] [--no-wait]",
		Short: "Replace the mesh root CA without interrupting traffic",
		Long: `Replace the mesh root. The rotation runs in the control plane, in three phases
that every replica follows from the store:

  trust     a new root joins every proxy's trust bundle; the old root still signs
            (for --propagation)
  reissue   the new root signs; every proxy re-issues its SVID at once; this ends
            when every registered workload holds an SVID of the new root, or after --grace
  complete  the old root leaves the trust bundle and the store

This command starts it and follows it until it completes, printing each phase and how
many proxies have re-issued; Ctrl-C stops following, not the rotation.`,
		Example: `  weft ca rotate
  weft ca rotate --propagation 10s --grace 5m`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if propagation < 0 || grace < 0 {
				return usagef("--propagation and --grace must not be negative")
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			st, err := c.RotateCA(cmd.Context(), propagation, grace)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			r := st.Rotation
			if r == nil {
				return fmt.Errorf("the control plane started a rotation but reports none")
			}
			fmt.Fprintf(out, "rotation %s started: new root %s\n", r.ID, shortFingerprint(r.NewRoot))
			if noWait {
				printPhase(out, r)
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return followRotation(ctx, c, out, r.ID)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&propagation, "propagation", 0, "how long the new root is trusted before it signs (default 30s)")
	f.DurationVar(&grace, "grace", 0, "the longest the old root stays after the new one signs (default 15m)")
	f.BoolVar(&noWait, "no-wait", false, "start the rotation and return; follow it with 'weft ca status'")
	f.DurationVar(&timeout, "timeout", 24*time.Hour, "stop following after this long (the rotation goes on)")
	return cmd
}

// followRotation prints the rotation's phases and progress until it completes.
func followRotation(ctx context.Context, c *client.Client, out io.Writer, id string) error {
	var lastPhase string
	lastReissued := -1
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := c.CAStatus(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("stopped following rotation %s (it goes on in the control plane; see 'weft ca status'): %w", id, ctx.Err())
		case err != nil:
			// A replica restarting is no reason to give up following.
			fmt.Fprintf(out, "  (status unavailable: %v)\n", err)
		case st.Rotation == nil || st.Rotation.ID != id:
			return fmt.Errorf("rotation %s is no longer the control plane's rotation", id)
		default:
			r := st.Rotation
			if r.Phase != lastPhase {
				printPhase(out, r)
				lastPhase, lastReissued = r.Phase, -1
			}
			if r.Phase == "reissue" && r.Reissued != lastReissued {
				fmt.Fprintf(out, "  %d/%d proxies re-issued their SVID\n", r.Reissued, r.Workloads)
				lastReissued = r.Reissued
			}
			if r.Phase == "complete" {
				for _, w := range st.Warnings {
					fmt.Fprintf(out, "warning: %s\n", w)
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following rotation %s (it goes on in the control plane; see 'weft ca status'): %w", id, ctx.Err())
		case <-tick.C:
		}
	}
}

func printPhase(out io.Writer, r *client.CARotation) {
	switch r.Phase {
	case "trust":
		fmt.Fprintf(out, "phase trust: every proxy's trust bundle gets the new root; the old root %s still signs (until %s)\n",
			shortFingerprint(r.OldRoot), caTime(r.NextStepBy))
	case "reissue":
		fmt.Fprintf(out, "phase reissue: the new root %s signs; proxies re-issue their SVIDs (the old root goes at %s at the latest)\n",
			shortFingerprint(r.NewRoot), caTime(r.NextStepBy))
	case "complete":
		fmt.Fprintf(out, "phase complete: the old root %s is retired: %s (%d/%d proxies re-issued)\n",
			shortFingerprint(r.OldRoot), r.Outcome, r.Reissued, r.Workloads)
	default:
		fmt.Fprintf(out, "phase %s\n", r.Phase)
	}
}

// printCAStatus prints the status for people.
func printCAStatus(w io.Writer, st *client.CAStatus, now time.Time) {
	fmt.Fprintf(w, "Trust domain: %s (%s CA)\n\n", st.TrustDomain, st.Mode)
	printCertTable(w, "ROOT", st.Roots, now, false)
	if len(st.Intermediates) > 0 {
		fmt.Fprintln(w)
		printCertTable(w, "INTERMEDIATE", st.Intermediates, now, true)
	}
	if st.OtherSVIDs > 0 {
		fmt.Fprintf(w, "\nSVIDs on record signed by a retired root: %d\n", st.OtherSVIDs)
	}
	if r := st.Rotation; r != nil {
		fmt.Fprintf(w, "\nRotation %s: phase %s since %s\n", r.ID, r.Phase, r.PhaseSince.UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "  old root %s, new root %s\n", shortFingerprint(r.OldRoot), shortFingerprint(r.NewRoot))
		switch r.Phase {
		case "trust":
			fmt.Fprintf(w, "  the new root signs at %s\n", caTime(r.NextStepBy))
		case "reissue":
			fmt.Fprintf(w, "  %d/%d proxies re-issued; the old root is retired at %s at the latest\n", r.Reissued, r.Workloads, caTime(r.NextStepBy))
			if len(r.Pending) > 0 {
				fmt.Fprintf(w, "  waiting for: %s\n", strings.Join(r.Pending, ", "))
			}
		case "complete":
			fmt.Fprintf(w, "  completed %s: %s (%d/%d proxies re-issued)\n", r.Completed.UTC().Format(time.RFC3339), r.Outcome, r.Reissued, r.Workloads)
		}
	}
	if len(st.Warnings) > 0 {
		fmt.Fprintln(w, "\nWarnings:")
		for _, m := range st.Warnings {
			fmt.Fprintf(w, "  ! %s\n", m)
		}
	}
}

// printCertTable prints certificates; withIssuer adds who signed each
// (an intermediate's issuer tells a cross certificate from the rest).
func printCertTable(w io.Writer, title string, certs []client.CACertificate, now time.Time, withIssuer bool) {
	tw := newTable(w)
	header := []string{title, "SHA256", "NOT AFTER", "LEFT", "SIGNING", "SVIDS"}
	if withIssuer {
		header = append(header, "ISSUER")
	}
	writeRow(tw, header)
	for _, c := range certs {
		signing := ""
		if c.Signing {
			signing = "yes"
		}
		row := []string{c.Subject, shortFingerprint(c.SHA256), c.NotAfter.UTC().Format(time.RFC3339),
			timeLeft(c.NotAfter.Sub(now)), signing, strconv.Itoa(c.SVIDs)}
		if withIssuer {
			row = append(row, c.Issuer)
		}
		writeRow(tw, row)
	}
	tw.Flush()
}

// short is a fingerprint's first 16 hex digits, enough to tell roots apart.
func shortFingerprint(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}

func caTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func timeLeft(d time.Duration) string {
	switch {
	case d <= 0:
		return "EXPIRED"
	case d >= 48*time.Hour:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d >= time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return d.Round(time.Second).String()
}
