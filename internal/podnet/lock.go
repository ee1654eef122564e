package podnet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Lock is an exclusive claim on a prefix: one Network per prefix at a time,
// so Stale never mistakes a live Network for a crashed one. The kernel
// releases it when the process dies, however it dies.
type Lock struct{ f *os.File }

// lockDir holds the lock files; /run is root's and cleared at boot.
var lockDir = "/run"

// AcquireLock takes the prefix's lock, or says which process holds it.
func AcquireLock(prefix string) (*Lock, error) {
	path := filepath.Join(lockDir, prefix+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("podnet: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := strings.TrimSpace(string(b))
			if holder == "" {
				holder = "another process"
			} else {
				holder = "process " + holder
			}
			return nil, fmt.Errorf("podnet: %s is in use by %s (%s)", prefix, holder, path)
		}
		return nil, fmt.Errorf("podnet: lock %s: %w", path, err)
	}
	// Released and removed by its holder between our open and our flock:
	// the file we hold is no longer the lock; take the new one.
	if held, err1 := f.Stat(); err1 == nil {
		if now, err2 := os.Stat(path); err2 != nil || !os.SameFile(held, now) {
			f.Close()
			return AcquireLock(prefix)
		}
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{f: f}, nil
}

// Release gives the lock up and removes its file.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = os.Remove(l.f.Name())
	_ = l.f.Close()
	l.f = nil
}
