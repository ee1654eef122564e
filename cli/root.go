// Package cli is the weft command line: the root command, the client
// commands that talk to the control plane's API (apply, get, delete, token,
// version), and the commands that run the control plane, the proxy and the
// demo. Each command lives in its own file.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
)

// Run runs the weft command line with the process's standard streams and
// returns the exit status.
func Run(args []string) int {
	return RunWith(args, os.Stdin, os.Stdout, os.Stderr)
}

// RunWith runs the weft command line with the given arguments and streams
// and returns the exit status: 0 on success, 1 on any error, which it
// prints to stderr as "error: <message>".
func RunWith(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	for _, line := range errorLines(err) {
		fmt.Fprintf(stderr, "error: %s\n", line)
	}
	var usage *usageError
	if errors.As(err, &usage) || strings.HasPrefix(err.Error(), "unknown command ") {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return 1
}

// errorLines splits an error joined from several (errors.Join) into one
// message per error, so each gets its own "error:" line.
func errorLines(err error) []string {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var lines []string
		for _, e := range joined.Unwrap() {
			lines = append(lines, errorLines(e)...)
		}
		return lines
	}
	return []string{err.Error()}
}

// usageError is a mistake in how a command was called, as opposed to a
// failure while running it; the user is pointed at --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// rootOptions are the flags every command shares.
type rootOptions struct {
	configPath string
}

func newRootCmd() *cobra.Command {
	opts := &rootOptions{}
	root := &cobra.Command{
		Use:   "weft",
		Short: "Weft is a service mesh for services in any language, on VMs, plain processes or Kubernetes",
		Long: `Weft is a service mesh for services in any language, on VMs, plain processes or Kubernetes.

Start a control plane with 'weft control', run a sidecar beside each service
with 'weft proxy', and manage the mesh's resources with 'weft apply', 'weft get'
and 'weft delete'. 'weft demo' runs a whole local mesh in one command.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.PersistentFlags().StringVar(&opts.configPath, "config", "",
		"client config file (default $"+client.EnvConfig+", then ~/.weft/control/config)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &usageError{msg: err.Error()}
	})
	root.AddCommand(
		newApplyCmd(opts),
		newGetCmd(opts),
		newDeleteCmd(opts),
		newExplainCmd(opts),
		newRolloutCmd(opts),
		newTokenCmd(opts),
		newCredentialCmd(opts),
		newAuditCmd(opts),
		newCACmd(opts),
		newStatCmd(opts),
		newTopCmd(opts),
		newTapCmd(opts),
		newProxyConfigCmd(opts),
		newVersionCmd(opts),
		newPrometheusConfigCmd(),
		newControlCmd(),
		newDemoCmd(),
		newAgentCmd(),
		newBootstrapCmd(),
		newProxyCmd(),
	)
	return root
}

// client loads the client config named by --config (or its defaults) and
// makes an API client from it.
func (o *rootOptions) client() (*client.Client, error) {
	cfg, err := client.LoadConfig(client.ResolveConfigPath(o.configPath))
	if err != nil {
		return nil, err
	}
	return client.New(cfg)
}

// argsBetween accepts min to max positional arguments and, otherwise, says
// what the command expects.
func argsBetween(min, max int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usagef("%s expects %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}
