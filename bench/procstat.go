package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// groupPIDs lists the live processes of a process group (an nginx master
// and its worker, or a single haproxy or Go process).
func groupPIDs(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{pgid}
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := readStat(pid)
		if err != nil || len(f) < 5 {
			continue
		}
		if pg, _ := strconv.Atoi(f[4]); pg == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// readStat returns the fields of /proc/<pid>/stat, with the command name
// (which may hold spaces) as the second.
func readStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := []string{string(bytes.TrimSpace(b[:open])), string(b[open+1 : end])}
	return append(fields, strings.Fields(string(b[end+1:]))...), nil
}

// cpuSeconds is the user+system CPU time the processes of a group have used.
func cpuSeconds(pgid int) float64 {
	var ticks uint64
	for _, pid := range groupPIDs(pgid) {
		f, err := readStat(pid)
		if err != nil || len(f) < 15 {
			continue
		}
		u, _ := strconv.ParseUint(f[13], 10, 64)
		s, _ := strconv.ParseUint(f[14], 10, 64)
		ticks += u + s
	}
	return float64(ticks) / clockTicks
}

// contextSwitches is how often the threads of a group's processes have
// switched off their CPU, voluntarily (to sleep: waiting for the network)
// or not: at a fixed request rate, about the wake-ups per request.
func contextSwitches(pgid int) uint64 {
	var total int64
	for _, pid := range groupPIDs(pgid) {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			continue
		}
		for _, t := range tasks {
			total += statusSum(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()),
				"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")
		}
	}
	return uint64(total)
}

// peakRSS is the sum of VmHWM (peak resident set) over a group's processes,
// in bytes. For nginx that is master plus worker.
func peakRSS(pgid int) int64 { return statusBytes(pgid, "VmHWM:") }

// anonRSS is the sum of RssAnon (resident anonymous memory: heap, stacks,
// buffers) over a group's processes, in bytes, now. The rest of the RSS is
// pages of the binary and its libraries, which the kernel maps around every
// page touched (fault-around) and can drop and share; the anonymous part
// is what the proxy itself allocated.
func anonRSS(pgid int) int64 { return statusBytes(pgid, "RssAnon:") }

// statusBytes sums a "<field> N kB" line of /proc/PID/status over a group.
func statusBytes(pgid int, field string) int64 {
	var total int64
	for _, pid := range groupPIDs(pgid) {
		total += statusSum(fmt.Sprintf("/proc/%d/status", pid), field) * 1024
	}
	return total
}

// statusSum sums the numbers of the named lines ("<field> N" or
// "<field> N kB") of a /proc status file; 0 if it cannot be read.
func statusSum(path string, fields ...string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var total int64
	for _, line := range strings.Split(string(b), "\n") {
		for _, field := range fields {
			if v, ok := strings.CutPrefix(line, field); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += n
			}
		}
	}
	return total
}

// resetPeakRSS sets VmHWM back to the current RSS (clear_refs 5), so the
// next reading is the peak of the run that follows, not of the whole life.
func resetPeakRSS(pgid int) error {
	for _, pid := range groupPIDs(pgid) {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
			return fmt.Errorf("reset peak RSS of %d: %w", pid, err)
		}
	}
	return nil
}

// pin binds every thread of every process of a group to the CPU list (as
// taskset takes it, "0" or "0-1"); threads started later inherit it.
func pin(ctx context.Context, pgid int, cpus string) error {
	for _, pid := range groupPIDs(pgid) {
		if _, err := runCmd(ctx, nil, "taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("pin %d to CPU %s: %w", pid, cpus, err)
		}
	}
	return nil
}

// allCPUs is the CPU list of the whole machine, to undo pin.
func allCPUs() string {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s
		}
	}
	return "0-" + strconv.Itoa(numCPU()-1)
}

// machine is the report's machine line: nproc and the CPU model.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("nproc %d, %s", numCPU(), model)
}

// numCPU is what nproc prints: the CPUs this process may run on.
func numCPU() int { return runtime.NumCPU() }
