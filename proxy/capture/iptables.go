package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// IPTables runs the iptables tools of the current network namespace.
type IPTables struct {
	Save    string // default "iptables-save"
	Restore string // default "iptables-restore"
}

func (ipt IPTables) tool(name, def string) (string, error) {
	if name == "" {
		name = def
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("capture: %s not found in PATH: install iptables (Debian: apt-get install iptables)", name)
	}
	return p, nil
}

// CurrentNAT returns `iptables-save -t nat`.
func (ipt IPTables) CurrentNAT(ctx context.Context) (string, error) {
	bin, err := ipt.tool(ipt.Save, "iptables-save")
	if err != nil {
		return "", err
	}
	out, err := run(ctx, nil, bin, "-t", "nat")
	if err != nil {
		return "", err
	}
	return out, nil
}

// RestoreArgs are the arguments Apply passes to iptables-restore.
var RestoreArgs = []string{"--noflush"}

// Apply feeds script to `iptables-restore --noflush`: all of it applies, or
// none of it.
func (ipt IPTables) Apply(ctx context.Context, script string) error {
	bin, err := ipt.tool(ipt.Restore, "iptables-restore")
	if err != nil {
		return err
	}
	_, err = run(ctx, strings.NewReader(script), bin, RestoreArgs...)
	return err
}

func run(ctx context.Context, stdin *strings.Reader, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errOut.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && (strings.Contains(msg, "Permission denied") || strings.Contains(msg, "Operation not permitted") || strings.Contains(msg, "you must be root")) {
			return "", fmt.Errorf("capture: %s %s: not permitted (needs root or CAP_NET_ADMIN in the pod's network namespace): %s", bin, strings.Join(args, " "), msg)
		}
		return "", fmt.Errorf("capture: %s %s: %w: %s", bin, strings.Join(args, " "), err, msg)
	}
	return out.String(), nil
}
