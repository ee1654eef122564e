package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a process group may take to exit after SIGTERM
// before it gets SIGKILL.
const stopGrace = 10 * time.Second

// proc is a child process the harness started and owns. It leads its own
// process group (so nginx's workers go with their master), its output goes
// to a log file, and stop ends the whole group.
type proc struct {
	name string
	// admin is a weft proxy's admin address, for its profiles; "" otherwise.
	admin string
	cmd   *exec.Cmd
	log   string
	done  chan struct{}
	err   error // set before done is closed
}

// pgid is the process group: the leader's PID.
func (p *proc) pgid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the group, waits up to stopGrace, then SIGKILLs it.
// Whatever the leader left behind in its group is killed too.
func (p *proc) stop() {
	pg := p.pgid()
	_ = syscall.Kill(-pg, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
	}
	_ = syscall.Kill(-pg, syscall.SIGKILL)
	<-p.done
}

// tail is the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// procSet owns every long-running process of a run and stops them all,
// newest first, however the run ends.
type procSet struct {
	logDir string
	mu     sync.Mutex
	procs  []*proc
}

func newProcSet(logDir string) *procSet { return &procSet{logDir: logDir} }

// spec describes a process to start.
type spec struct {
	name string   // unique in the run; names the log file
	argv []string // program and arguments
	env  []string // added to the harness's environment
	dir  string   // working directory; the harness's when empty
}

// start starts a long-running process; the set stops it in stopAll.
func (s *procSet) start(sp spec) (*proc, error) {
	logPath := filepath.Join(s.logDir, sanitize(sp.name)+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", sp.name, err)
	}
	cmd := exec.Command(sp.argv[0], sp.argv[1:]...)
	cmd.Env = append(os.Environ(), sp.env...)
	cmd.Dir = sp.dir
	cmd.Stdout, cmd.Stderr = f, f
	// Own group so one kill reaches every process it forks; Pdeathsig so
	// the leader dies with the harness even if the harness is SIGKILLed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", sp.name, err)
	}
	p := &proc{name: sp.name, cmd: cmd, log: logPath, done: make(chan struct{})}
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

// mark is a point in the set's history for stopFrom.
func (s *procSet) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.procs)
}

// stopAll stops every process, all at once, and waits for them.
func (s *procSet) stopAll() { s.stopFrom(0) }

// stopFrom stops the processes started since mark m, all at once, and
// waits for them.
func (s *procSet) stopFrom(m int) {
	s.mu.Lock()
	procs := s.procs[m:]
	s.procs = s.procs[:m:m]
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}

// runCmd runs a short command to completion in its own process group and
// returns its standard output; an error carries the standard error too.
// Cancelling ctx kills the group.
func runCmd(ctx context.Context, env []string, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String() + "\n" + stdout.String())
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

func sanitize(name string) string {
	return strings.NewReplacer("/", "-", " ", "_", ":", "_").Replace(name)
}
