package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// The load generator and the Go peer, at the versions the protocol names.
var (
	fortioTool = goTool{name: "fortio", module: "fortio.org/fortio", pkg: "fortio.org/fortio", version: "1.68.2"}
	caddyTool  = goTool{name: "caddy", module: "github.com/caddyserver/caddy/v2",
		pkg: "github.com/caddyserver/caddy/v2/cmd/caddy", version: "2.11.9"}
)

// goTool is a program installed with `go install pkg@vversion`.
type goTool struct {
	name    string // the binary's name
	module  string // the module that holds pkg
	pkg     string // the main package
	version string // without the leading v
}

// tools finds, installs and builds what a run needs. Go tools go into the
// cache directory, Debian packages through apt-get.
type tools struct {
	root    string // module root, for building weft
	cache   string
	install bool
	log     func(format string, args ...any)

	aptMu sync.Mutex // one apt-get at a time
}

// fortio returns the path of fortio at its pinned version, installing it into
// the cache if it is not there.
func (t *tools) fortio(ctx context.Context) (string, error) {
	return t.goInstall(ctx, fortioTool)
}

// caddy returns the path of Caddy at its pinned version, building it into the
// cache if it is not there (a few minutes the first time).
func (t *tools) caddy(ctx context.Context) (string, error) {
	return t.goInstall(ctx, caddyTool)
}

// caddyBuilt says whether the cache already holds a Caddy binary.
func caddyBuilt(o Options) bool {
	_, err := os.Stat(filepath.Join(o.Cache, "caddy"))
	return err == nil
}

// goInstall returns the tool's path in the cache, first installing it
// there unless the binary already in place was built from the right module
// version (as `go version -m` reads it from the binary).
func (t *tools) goInstall(ctx context.Context, g goTool) (string, error) {
	path := filepath.Join(t.cache, g.name)
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("install %s: %w", g.name, err)
	}
	want := "\tmod\t" + g.module + "\tv" + g.version + "\t"
	if out, err := runCmd(ctx, nil, goBin, "version", "-m", path); err == nil && strings.Contains(string(out), want) {
		return path, nil
	}
	if !t.install {
		return "", fmt.Errorf("%s v%s is not in %s (and -no-install was given)", g.name, g.version, t.cache)
	}
	t.log("installing %s@v%s into %s", g.pkg, g.version, t.cache)
	if _, err := runCmd(ctx, []string{"GOBIN=" + t.cache}, goBin, "install", g.pkg+"@v"+g.version); err != nil {
		return "", fmt.Errorf("install %s: %w", g.name, err)
	}
	return path, nil
}

// weft builds weft and weft-proxy from the working tree into dir and
// returns their paths. It builds every run: the tree is what is measured.
// (dir is the run's own, so a run never overwrites another's binaries.)
func (t *tools) weft(ctx context.Context, dir string) (weft, proxy string, err error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", "", fmt.Errorf("build weft: %w", err)
	}
	weft, proxy = filepath.Join(dir, "weft"), filepath.Join(dir, "weft-proxy")
	t.log("building weft and weft-proxy")
	// The sidecar is built as README.md says: static (CGO_ENABLED=0), so
	// that no libc is mapped into it, and without gRPC's request tracing,
	// whose templates would keep every exported method in the binary.
	for _, b := range []struct {
		bin, pkg string
		env      []string
		flags    []string
	}{
		{weft, "./cmd/weft", nil, nil},
		{proxy, "./cmd/weft-proxy", []string{"CGO_ENABLED=0"}, []string{"-tags", "grpcnotrace"}},
	} {
		argv := append([]string{goBin, "build", "-C", t.root}, b.flags...)
		argv = append(argv, "-o", b.bin, b.pkg)
		if _, err := runCmd(ctx, b.env, argv...); err != nil {
			return "", "", fmt.Errorf("build %s: %w", b.pkg, err)
		}
	}
	return weft, proxy, nil
}

// debian returns the path of a program from a Debian package, installing
// the package with apt-get when the program is missing. The package's
// service is not started (see withoutServices): the harness runs the
// binary itself with its own configuration.
func (t *tools) debian(ctx context.Context, program, pkg string) (string, error) {
	if p, err := lookPath(program); err == nil {
		return p, nil
	}
	if !t.install {
		return "", fmt.Errorf("%s is not installed (and -no-install was given)", program)
	}
	t.aptMu.Lock()
	defer t.aptMu.Unlock()
	if p, err := lookPath(program); err == nil {
		return p, nil
	}
	t.log("installing %s with apt-get", pkg)
	err := withoutServices(func() error {
		env := []string{"DEBIAN_FRONTEND=noninteractive"}
		if _, err := runCmd(ctx, env, "apt-get", "install", "-y", "-q", pkg); err == nil {
			return nil
		}
		// The package lists may be missing or stale: refresh once and retry.
		if _, err := runCmd(ctx, env, "apt-get", "update", "-q"); err != nil {
			return err
		}
		_, err := runCmd(ctx, env, "apt-get", "install", "-y", "-q", pkg)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("install %s: %w", pkg, err)
	}
	return lookPath(program)
}

// lookPath finds a program on PATH or in /usr/sbin, where Debian puts
// haproxy and nginx (and which a non-root PATH may lack).
func lookPath(program string) (string, error) {
	if p, err := exec.LookPath(program); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", program)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s: not installed", program)
	}
	return p, nil
}

// policyRC is Debian's hook that invoke-rc.d asks before it starts a
// service; exit status 101 means "do not".
const policyRC = "/usr/sbin/policy-rc.d"

// withoutServices runs f (an apt-get install) so that the packages'
// maintainer scripts do not start their services: it puts a policy-rc.d
// that denies every start in place if there is none, and removes it after.
func withoutServices(f func() error) error {
	if _, err := os.Stat(policyRC); err == nil {
		return f()
	}
	if err := os.WriteFile(policyRC, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return fmt.Errorf("keep services from starting: %w", err)
	}
	return errors.Join(f(), os.Remove(policyRC))
}
