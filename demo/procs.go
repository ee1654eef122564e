package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/podnet"
)

// process is one child the demo started. Each runs in its own process group
// (so a terminal's Ctrl-C reaches only the demo, which stops them in order)
// and is killed by the kernel if the demo itself dies.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// supervisor owns every child process.
type supervisor struct {
	bin    string
	logDir string

	mu    sync.Mutex
	procs []*process
}

// start runs bin with args, its output going to logDir/name.log (and to tee, if set).
func (s *supervisor) start(name string, tee io.Writer, args ...string) (*process, error) {
	return s.launch(name, tee, exec.Command(s.bin, args...))
}

// startIn is start inside a pod. A gid other than 0 runs the process with
// that group, which the pod's capture rules exclude (the sidecar's).
func (s *supervisor) startIn(pod *podnet.Pod, gid uint32, name string, tee io.Writer, args ...string) (*process, error) {
	return s.launch(name, tee, pod.Command(gid, s.bin, args...))
}

func (s *supervisor) launch(name string, tee io.Writer, cmd *exec.Cmd) (*process, error) {
	logPath := filepath.Join(s.logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("demo: %s log: %w", name, err)
	}
	var out io.Writer = f
	if tee != nil {
		out = io.MultiWriter(f, tee)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("demo: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// exited returns the first child that has exited, if any.
func (s *supervisor) exited() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		select {
		case <-p.done:
			return p
		default:
		}
	}
	return nil
}

// stopAll stops children in reverse start order: SIGTERM, then SIGKILL for
// any still running after the grace period. It returns once all have exited.
func (s *supervisor) stopAll(grace time.Duration, progress func(string)) {
	s.mu.Lock()
	procs := append([]*process(nil), s.procs...)
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		select {
		case <-p.done:
			continue
		default:
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.After(grace)
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		select {
		case <-p.done:
		case <-deadline:
			progress(fmt.Sprintf("%s did not stop in %s; killing it", p.name, grace))
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

// waitFor polls check until it succeeds, the process dies, or ctx ends.
func waitFor(ctx context.Context, p *process, what string, check func() error) error {
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-p.done:
			return fmt.Errorf("demo: %s exited while starting (%v); see %s", p.name, p.err, p.log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
