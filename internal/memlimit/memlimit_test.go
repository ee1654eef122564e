package memlimit

import (
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"300MiB": 300 << 20, "2GiB": 2 << 30, "512KiB": 512 << 10, "1TiB": 1 << 40, "1000B": 1000, "123456": 123456,
	} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1MiB", "0", "1.5GiB", "12MB", "9999999TiB"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  int64
		ok    bool
	}{{
		name: "v2 in a cgroup namespace",
		files: fstest.MapFS{
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("536870912\n")},
		},
		want: 512 << 20, ok: true,
	}, {
		name: "v2, the process's own cgroup",
		files: fstest.MapFS{
			"proc/self/cgroup":                          {Data: []byte("0::/kubepods/pod1/c1\n")},
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": {Data: []byte("1073741824\n")},
			"sys/fs/cgroup/memory.max":                  {Data: []byte("max\n")},
		},
		want: 1 << 30, ok: true,
	}, {
		name: "v2 without a limit",
		files: fstest.MapFS{
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("max\n")},
		},
	}, {
		name: "v1",
		files: fstest.MapFS{
			"proc/self/cgroup":                           {Data: []byte("5:cpu,cpuacct:/\n4:memory:/docker/abc\n0::/\n")},
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("268435456\n")},
		},
		want: 256 << 20, ok: true,
	}, {
		name: "v1 without a limit",
		files: fstest.MapFS{
			"proc/self/cgroup":                           {Data: []byte("4:memory:/\n")},
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := cgroupLimit(tc.files)
			if err != nil || got != tc.want || ok != tc.ok {
				t.Errorf("cgroupMemoryLimit = %d, %v, %v; want %d, %v", got, ok, err, tc.want, tc.ok)
			}
		})
	}
}

// TestApplyMemoryLimit checks that auto takes 90% of the container's limit
// and that an explicit size is taken as it is.
func TestApplyMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	log := slog.New(slog.DiscardHandler)
	container := fstest.MapFS{
		"proc/self/cgroup":         {Data: []byte("0::/\n")},
		"sys/fs/cgroup/memory.max": {Data: []byte("1000000000\n")},
	}
	if err := Apply("auto", container, log); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != 900000000 {
		t.Errorf("auto: limit %d, want 900000000", got)
	}
	if err := Apply("300MiB", container, log); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Errorf("300MiB: limit %d, want %d", got, 300<<20)
	}
	if err := Apply("lots", container, log); err == nil {
		t.Error("--memory-limit=lots accepted")
	}
}

func TestApplyGCPercent(t *testing.T) {
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	log := slog.New(slog.DiscardHandler)
	if err := ApplyGCPercent(50, log); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 50 {
		t.Errorf("--gc-percent 50: GC percent %d", got)
	}
	for _, bad := range []int{0, -1, 10001} {
		if err := ApplyGCPercent(bad, log); err == nil || !strings.Contains(err.Error(), "--gc-percent") {
			t.Errorf("--gc-percent %d: %v, want an error naming the flag", bad, err)
		}
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("a refused --gc-percent changed the GC percent to %d", got)
	}
	// GOGC wins over the flag.
	t.Setenv("GOGC", "200")
	if err := ApplyGCPercent(50, log); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, --gc-percent changed the GC percent to %d", got)
	}
}
