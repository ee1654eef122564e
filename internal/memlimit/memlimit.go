// Package memlimit sets the Go runtime's soft memory limit from a flag or
// from the container's cgroup memory limit, for every weft process that
// runs in a container, and the GC's target percentage from a flag.
package memlimit

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// FlagUsage is the --memory-limit flag's help.
const FlagUsage = "soft limit on the process's Go memory (e.g. 512MiB, 2GiB): near it the GC collects more often " +
	"instead of letting the heap grow to twice what it keeps; auto: 90% of the container's cgroup memory limit, if it has one; none: no limit. " +
	"GOMEMLIMIT, when set, takes precedence"

// AutoShare is the share of a container's memory limit that "auto" gives
// the Go runtime: the rest is for what it does not count (the binary's
// mapped text, etcd's memory-mapped database, the kernel's socket buffers).
const AutoShare = 0.9

// Apply sets the Go runtime's soft memory limit from a --memory-limit flag:
// a size (512MiB, 2GiB), "auto" (AutoShare of the container's cgroup memory
// limit, when it has one) or "none"; GOMEMLIMIT, when set, wins. Without a
// limit the GC lets a heap that churns reach twice its live size: in a
// container with a memory limit that is an OOM kill waiting for a burst.
// root is the filesystem the cgroup files are read from.
func Apply(flag string, root fs.FS, log *slog.Logger) error {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit from GOMEMLIMIT", "limit", v)
		return nil
	}
	var limit int64
	switch flag {
	case "none":
		return nil
	case "auto":
		container, ok, err := cgroupLimit(root)
		if err != nil {
			log.Warn("no memory limit: reading the cgroup's", "err", err)
			return nil
		}
		if !ok {
			return nil
		}
		limit = int64(float64(container) * AutoShare)
	default:
		var err error
		if limit, err = parseByteSize(flag); err != nil {
			return fmt.Errorf("--memory-limit: %w", err)
		}
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "bytes", limit, "flag", flag)
	return nil
}

// GCPercentUsage is the --gc-percent flag's help.
const GCPercentUsage = "how far the heap may grow past what the last collection kept before the next one, in percent " +
	"(Go's GOGC): lower trades CPU for memory. GOGC, when set, takes precedence"

// ApplyGCPercent sets the GC's target percentage from a --gc-percent flag
// (Go's GOGC; its default is 100); GOGC, when set, wins.
func ApplyGCPercent(percent int, log *slog.Logger) error {
	if v := os.Getenv("GOGC"); v != "" {
		log.Info("GC target from GOGC", "gogc", v)
		return nil
	}
	if percent < 1 || percent > 10000 {
		return fmt.Errorf("--gc-percent: %d is not between 1 and 10000", percent)
	}
	debug.SetGCPercent(percent)
	return nil
}

// cgroupLimit returns the memory limit of the cgroup this process
// runs in (cgroup v2 memory.max, else v1 memory.limit_in_bytes), and
// whether it has one. It looks in the process's own cgroup directory, then
// at the hierarchy's root, which is the container's own under a cgroup
// namespace.
func cgroupLimit(root fs.FS) (int64, bool, error) {
	data, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return 0, false, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var candidates []string
		switch {
		case parts[0] == "0" && parts[1] == "":
			candidates = []string{path.Join("sys/fs/cgroup", parts[2], "memory.max"), "sys/fs/cgroup/memory.max"}
		case strings.Contains(","+parts[1]+",", ",memory,"):
			candidates = []string{path.Join("sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes"), "sys/fs/cgroup/memory/memory.limit_in_bytes"}
		default:
			continue
		}
		for _, file := range candidates {
			v, err := fs.ReadFile(root, file)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return 0, false, err
			}
			return parseCgroupLimit(strings.TrimSpace(string(v)))
		}
	}
	return 0, false, nil
}

// parseCgroupLimit reads a memory limit file: "max" (v2) or a page-rounded
// huge number (v1) mean none.
func parseCgroupLimit(v string) (int64, bool, error) {
	if v == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cgroup memory limit %q: %w", v, err)
	}
	if n <= 0 || n >= math.MaxInt64/2 {
		return 0, false, nil
	}
	return n, true, nil
}

// parseByteSize parses a size as GOMEMLIMIT writes them: a number of
// bytes, optionally followed by B, KiB, MiB, GiB or TiB.
func parseByteSize(v string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	var shift uint
	num := v
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is not a size such as 512MiB or 2GiB", v)
	}
	return n << shift, nil
}
