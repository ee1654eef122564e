package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/client"
)

func newApplyCmd(root *rootOptions) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [-f ...]",
		Short: "Create or update resources from YAML or JSON files",
		Long: `Create or update mesh resources from YAML or JSON files.

Each file is applied whole: the control plane checks every document in it and
stores all of them in one transaction, or none when any is wrong. A directory
applies its *.yaml, *.yml and *.json files in name order, each on its own; '-'
reads standard input.`,
		Example: `  weft apply -f payments.yaml
  weft apply -f mesh.yaml -f services/
  cat route.yaml | weft apply -f -`,
		Args: argsBetween(0, 0, "no arguments (name files with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usagef("no files given: pass -f FILE, -f DIR or -f - for standard input")
			}
			sources, err := expandSources(files)
			if err != nil {
				return err
			}
			c, err := root.client()
			if err != nil {
				return err
			}
			var failed []error
			for _, src := range sources {
				data, err := src.read(cmd.InOrStdin())
				if err != nil {
					failed = append(failed, err)
					continue
				}
				results, err := c.Apply(cmd.Context(), data, src.name)
				if err != nil {
					var apiErr *client.APIError
					if !errors.As(err, &apiErr) {
						// The control plane is unreachable: the other files would fail the same way.
						return errors.Join(append(failed, err)...)
					}
					printProblems(cmd.ErrOrStderr(), src.name, apiErr.Details)
					failed = append(failed, errors.New(apiErr.Message))
					continue
				}
				for _, r := range results {
					printResult(cmd.OutOrStdout(), r)
				}
			}
			return errors.Join(failed...)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file or directory of resources, or - for standard input (repeatable)")
	return cmd
}

// source is one file to apply; name is how messages refer to it.
type source struct {
	name, path string
	stdin      bool
}

func (s source) read(stdin io.Reader) ([]byte, error) {
	if s.stdin {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.name, unwrapPathError(err))
	}
	return data, nil
}

// expandSources turns -f arguments into files, listing directories.
func expandSources(args []string) ([]source, error) {
	var out []source
	stdinSeen := false
	for _, arg := range args {
		if arg == "-" {
			if stdinSeen {
				return nil, usagef("-f - given twice: standard input can be read only once")
			}
			stdinSeen = true
			out = append(out, source{name: "stdin", stdin: true})
			continue
		}
		info, err := os.Stat(arg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", arg, unwrapPathError(err))
		}
		if !info.IsDir() {
			out = append(out, source{name: arg, path: arg})
			continue
		}
		entries, err := os.ReadDir(arg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", arg, unwrapPathError(err))
		}
		var names []string
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					names = append(names, e.Name())
				}
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%s: no *.yaml, *.yml or *.json files in the directory", arg)
		}
		sort.Strings(names)
		for _, n := range names {
			p := filepath.Join(arg, n)
			out = append(out, source{name: p, path: p})
		}
	}
	return out, nil
}

// unwrapPathError drops *fs.PathError's repetition of the path the caller already names.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
